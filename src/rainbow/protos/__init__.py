"""Generated protobuf and gRPC modules (python protos/generate.py); never edit by hand."""
