CREATE TABLE "policy_modules" (
	"sha256" text PRIMARY KEY NOT NULL,
	"original" "bytea" NOT NULL,
	"instrumented" "bytea" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
