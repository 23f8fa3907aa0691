"""``flux rainbow register|agent|submit ...``: rainbow's Flux commands as a flux subcommand.

Put this directory on ``FLUX_EXEC_PATH`` (``export FLUX_EXEC_PATH=/path/to/flux_plugins/cmd``) and
``flux rainbow submit -N2 app`` runs ``flux python -m rainbow.submit -N2 app``, and likewise for
``register`` and ``agent``.
"""

import sys

USAGE = "usage: flux rainbow {register,agent,submit} [options]"


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(USAGE)
        return 0 if len(argv) >= 2 else 2
    command, rest = argv[1], argv[2:]
    if command == "register":
        from rainbow.flux.register import main as run
    elif command == "agent":
        from rainbow.agent.command import main as run
    elif command == "submit":
        from rainbow.flux.submit import main as run
    else:
        print(f"flux rainbow: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    return run(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
