"""The specification's Python client for the block inference API (block-runtime.md, "Python example").

The code path is the specification's: build an AIOSPacket, serialize it into InferenceMessage.rpc_data,
call InferenceProxy.infer, print `response.message`. Additions, all optional:

- the target: argv[1], else $AIOS_BLOCK_TARGET, else the specification's localhost:50051;
- the task's data: $AIOS_TASK_DATA, else the specification's '{"input": "Hello Block"}';
- the session id: $AIOS_SESSION_ID, else the specification's "session-123" (an instance answers a
  repeated (session_id, seq_no) with its first outcome, so a new task needs a new session or seq_no);
- after the specification's line, the fields this implementation adds to InferenceResponse.

The stubs come from this repository's proto/ files, generated into a `protos` package beside this file
(examples/sentiment/README.md shows the command).
"""
import os
import sys

import grpc
import time
from protos import inference_pb2, inference_pb2_grpc, payload_pb2

TARGET = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AIOS_BLOCK_TARGET", "localhost:50051")
DATA = os.environ.get("AIOS_TASK_DATA", '{"input": "Hello Block"}')
SESSION_ID = os.environ.get("AIOS_SESSION_ID", "session-123")


def create_aios_packet():
    packet = payload_pb2.AIOSPacket()
    packet.session_id = SESSION_ID
    packet.seq_no = 1
    packet.data = DATA
    packet.ts = time.time()

    # Optional: Add a small file
    file_info = payload_pb2.FileInfo()
    file_info.metadata = '{"type": "text", "description": "sample file"}'
    file_info.file_data = b"Sample file content"

    packet.files.append(file_info)

    return packet


def run():
    # Connect to the gRPC server
    channel = grpc.insecure_channel(TARGET)
    stub = inference_pb2_grpc.InferenceProxyStub(channel)

    # Serialize the payload
    aios_packet = create_aios_packet()
    serialized_data = aios_packet.SerializeToString()

    # Wrap it into InferenceMessage
    request = inference_pb2.InferenceMessage(rpc_data=serialized_data)

    # Send inference
    response = stub.infer(request)
    print("Inference response:", response.message)

    # Fields added by aios (new field numbers, so the specification's client above is unaffected).
    print("result:", response.result)
    print("error:", response.error)
    print("instance_id:", response.instance_id)


if __name__ == "__main__":
    run()
