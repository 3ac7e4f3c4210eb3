"""Root of the CLI: command registration and the one place errors become messages and exit codes.

Exit codes and wording come from ``edgekit.cli.errors`` (0 ok, 1 a check ran and failed, 2 usage or input
error, 3 runtime failure, 130 interrupted). Tracebacks only with EDGEKIT_DEBUG=1.
"""

from __future__ import annotations

import sys

import typer

from edgekit.cli import bench, chat, compress, models, quantize, route, run, serve
from edgekit.cli.distill import distill_
from edgekit.cli.errors import error_line, exit_code
from edgekit.cli.eval import eval_
from edgekit.cli.render import err
from edgekit.cli.safety import safety_app
from edgekit.config import Settings
from edgekit.errors import EdgekitError

app = typer.Typer(
    name="edgekit",
    help="On-device LLM toolkit: verified small models, local chat, benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from edgekit import __version__

        print(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """On-device LLM toolkit: verified small models, local chat, benchmarks."""


app.command("run")(run.run)
app.command("chat")(chat.chat)
app.command("pull")(models.pull)
app.command("bench")(bench.bench)
app.command("eval")(eval_)
app.command("compress")(compress.compress)
app.command("serve")(serve.serve)
app.command("distill")(distill_)
app.command("quantize")(quantize.quantize)
app.add_typer(models.app, name="models")
app.add_typer(route.route_app, name="route")
app.add_typer(route.trace_app, name="trace")
app.add_typer(safety_app, name="safety")

app.command("eval-router")(route.eval_router)


def main(argv: list[str] | None = None) -> None:
    debug = Settings.from_env().debug
    try:
        code = app(args=argv, prog_name="edgekit", standalone_mode=False)
    except EdgekitError as e:
        if debug:
            raise
        err.print(error_line(e), markup=False)
        sys.exit(exit_code(e))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.TyperException as e:  # usage errors: bad option, missing argument (typer's own click)
        e.show()  # type: ignore[attr-defined]
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        err.print("\ninterrupted")  # on a line of its own, wherever the cursor was
        sys.exit(130)
    except Exception as e:
        if debug:
            raise
        err.print(
            f"error: unexpected {type(e).__name__}: {e} (hint: run again with EDGEKIT_DEBUG=1 and report it)",
            markup=False,
        )
        sys.exit(3)
    sys.exit(code if isinstance(code, int) else 0)
