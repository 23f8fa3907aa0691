"""Generate the Python protobuf/gRPC modules in src/rainbow/protos from protos/*.proto.

Usage: python protos/generate.py [--out DIR]

The output is committed; tests/test_protos.py regenerates into a temporary
directory and fails when the committed modules are stale.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = PROTO_DIR.parent / "src" / "rainbow" / "protos"
MODULES = ("rainbow", "memory")


def generate(out: Path) -> list[Path]:
    """Run protoc for every contract file into `out`; return the files written."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    for name in MODULES:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_DIR / f"{name}.proto"),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed for {name}.proto")
        # protoc writes a top-level import; the modules live in a package.
        stub = out / f"{name}_pb2_grpc.py"
        text = re.sub(rf"^import {name}_pb2 as", f"from . import {name}_pb2 as", stub.read_text(), flags=re.M)
        stub.write_text(text)
    return sorted(out.glob("*_pb2*.py*"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
