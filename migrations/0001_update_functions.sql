-- SQL side of the MongoDB update translation (src/store/mongo/update.ts). Errors the caller caused are
-- raised as SQLSTATE 22023 (invalid_parameter_value), which the store answers as a 400.
CREATE OR REPLACE FUNCTION aios_fail(msg text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = msg;
END $$;
--> statement-breakpoint
-- $set: writes val at path, creating missing intermediate objects; array elements are addressed by
-- numeric segments and arrays are padded with nulls, as MongoDB does.
CREATE OR REPLACE FUNCTION aios_set(target jsonb, path text[], val jsonb, done text[] DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  head text;
  rest text[];
  child jsonb;
  idx int;
  len int;
BEGIN
  IF cardinality(path) = 0 THEN
    RETURN val;
  END IF;
  head := path[1];
  rest := path[2:cardinality(path)];
  IF jsonb_typeof(target) = 'object' THEN
    child := target -> head;
    IF child IS NULL AND cardinality(rest) > 0 THEN
      child := '{}'::jsonb;
    END IF;
    RETURN jsonb_set(target, ARRAY[head], aios_set(child, rest, val, done || head));
  ELSIF jsonb_typeof(target) = 'array' AND head ~ '^[0-9]+$' THEN
    idx := head::int;
    len := jsonb_array_length(target);
    IF idx >= len THEN
      target := target || (SELECT jsonb_agg('null'::jsonb) FROM generate_series(len, idx));
    END IF;
    child := target -> idx;
    IF jsonb_typeof(child) = 'null' AND cardinality(rest) > 0 THEN
      child := '{}'::jsonb;
    END IF;
    RETURN jsonb_set(target, ARRAY[head], aios_set(child, rest, val, done || head));
  ELSE
    RETURN aios_fail(format('Cannot create field ''%s'' in element {%s: %s}', head,
      coalesce(array_to_string(done, '.'), ''), target::text));
  END IF;
END $$;
--> statement-breakpoint
-- $unset: removes an object field; an array element becomes null (MongoDB keeps array positions).
CREATE OR REPLACE FUNCTION aios_unset(target jsonb, path text[]) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  parent jsonb;
  last text := path[cardinality(path)];
BEGIN
  IF cardinality(path) = 1 THEN
    parent := target;
  ELSE
    parent := target #> path[1:cardinality(path) - 1];
  END IF;
  IF jsonb_typeof(parent) = 'object' AND parent ? last THEN
    RETURN target #- path;
  ELSIF jsonb_typeof(parent) = 'array' AND last ~ '^[0-9]+$' AND last::int < jsonb_array_length(parent) THEN
    RETURN jsonb_set(target, path, 'null'::jsonb);
  END IF;
  RETURN target;
END $$;
--> statement-breakpoint
-- MongoDB's order across types: null < numbers < strings < objects < arrays < booleans.
CREATE OR REPLACE FUNCTION aios_cmp(a jsonb, b jsonb) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  ra int;
  rb int;
BEGIN
  ra := CASE jsonb_typeof(a) WHEN 'number' THEN 2 WHEN 'string' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 5 WHEN 'boolean' THEN 8 ELSE 1 END;
  rb := CASE jsonb_typeof(b) WHEN 'number' THEN 2 WHEN 'string' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 5 WHEN 'boolean' THEN 8 ELSE 1 END;
  IF ra <> rb THEN
    RETURN sign(ra - rb);
  ELSIF ra = 2 THEN
    RETURN sign(a::numeric - b::numeric);
  ELSIF ra = 3 THEN
    RETURN CASE WHEN (a #>> '{}') COLLATE "C" < (b #>> '{}') COLLATE "C" THEN -1
                WHEN (a #>> '{}') = (b #>> '{}') THEN 0 ELSE 1 END;
  ELSIF ra = 8 THEN
    RETURN sign(a::boolean::int - b::boolean::int);
  ELSIF ra = 1 THEN
    RETURN 0;
  END IF;
  RETURN CASE WHEN a < b THEN -1 WHEN a = b THEN 0 ELSE 1 END;
END $$;
--> statement-breakpoint
-- $inc, $mul, $min, $max on the current value (SQL NULL when the field is missing).
CREATE OR REPLACE FUNCTION aios_apply(op text, cur jsonb, operand jsonb, field text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF op IN ('$inc', '$mul') THEN
    IF cur IS NULL THEN
      RETURN CASE WHEN op = '$inc' THEN operand ELSE to_jsonb(0) END;
    ELSIF jsonb_typeof(cur) <> 'number' THEN
      RETURN aios_fail(format('Cannot apply %s to a value of non-numeric type: ''%s'' is of type %s',
        op, field, jsonb_typeof(cur)));
    ELSIF op = '$inc' THEN
      RETURN to_jsonb(cur::numeric + operand::numeric);
    ELSE
      RETURN to_jsonb(cur::numeric * operand::numeric);
    END IF;
  ELSIF cur IS NULL THEN
    RETURN operand;
  ELSIF op = '$min' THEN
    RETURN CASE WHEN aios_cmp(operand, cur) < 0 THEN operand ELSE cur END;
  ELSE
    RETURN CASE WHEN aios_cmp(operand, cur) > 0 THEN operand ELSE cur END;
  END IF;
END $$;
--> statement-breakpoint
-- $push with $each, $position and $slice.
CREATE OR REPLACE FUNCTION aios_push(cur jsonb, items jsonb, pos int, slice int, field text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  arr jsonb := coalesce(cur, '[]'::jsonb);
  len int;
  at int;
BEGIN
  IF jsonb_typeof(arr) <> 'array' THEN
    RETURN aios_fail(format('The field ''%s'' must be an array but is of type %s', field, jsonb_typeof(arr)));
  END IF;
  len := jsonb_array_length(arr);
  at := CASE WHEN pos IS NULL THEN len WHEN pos < 0 THEN greatest(len + pos, 0) ELSE least(pos, len) END;
  arr := coalesce((SELECT jsonb_agg(e ORDER BY i) FROM jsonb_array_elements(arr) WITH ORDINALITY AS x(e, i) WHERE i <= at), '[]'::jsonb)
      || items
      || coalesce((SELECT jsonb_agg(e ORDER BY i) FROM jsonb_array_elements(arr) WITH ORDINALITY AS x(e, i) WHERE i > at), '[]'::jsonb);
  IF slice IS NOT NULL THEN
    len := jsonb_array_length(arr);
    arr := coalesce((SELECT jsonb_agg(e ORDER BY i) FROM jsonb_array_elements(arr) WITH ORDINALITY AS x(e, i)
      WHERE (slice >= 0 AND i <= slice) OR (slice < 0 AND i > len + slice)), '[]'::jsonb);
  END IF;
  RETURN arr;
END $$;
--> statement-breakpoint
-- $addToSet with $each: appends the items not already present (and not repeated among themselves).
CREATE OR REPLACE FUNCTION aios_add_to_set(cur jsonb, items jsonb, field text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  arr jsonb := coalesce(cur, '[]'::jsonb);
  item jsonb;
BEGIN
  IF jsonb_typeof(arr) <> 'array' THEN
    RETURN aios_fail(format('Cannot apply $addToSet to non-array field ''%s'' of type %s', field, jsonb_typeof(arr)));
  END IF;
  FOR item IN SELECT e FROM jsonb_array_elements(items) AS e LOOP
    IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(arr) AS a WHERE a = item) THEN
      arr := arr || jsonb_build_array(item);
    END IF;
  END LOOP;
  RETURN arr;
END $$;
--> statement-breakpoint
-- $rename: moves a field; a missing source changes nothing.
CREATE OR REPLACE FUNCTION aios_rename(target jsonb, src text[], dst text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  val jsonb := target #> src;
BEGIN
  IF val IS NULL THEN
    RETURN target;
  END IF;
  RETURN aios_set(aios_unset(target, src), dst, val);
END $$;
