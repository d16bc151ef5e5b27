"""``masklab <verb>``: parse, call the Python API, print. No logic of its own."""

from __future__ import annotations

import os
import sys

import click

from masklab import __version__
from masklab.errors import MasklabError


class _Group(click.Group):
    """Every failure is one line on stderr: ``MasklabError`` and bad values exit 2 (bad
    input), anything else is an internal error and exits 1. ``MASKLAB_DEBUG=1`` re-raises."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:  # `masklab ... | head`: the reader left; not an error
            try:  # what is left in the buffer goes nowhere, not to a closed pipe at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass
            sys.exit(0)
        except (MasklabError, ValueError, FileNotFoundError) as e:
            if os.environ.get("MASKLAB_DEBUG"):
                raise
            click.echo(f"masklab: error: {e}", err=True)
            sys.exit(2)
        except Exception as e:
            if os.environ.get("MASKLAB_DEBUG"):
                raise
            click.echo(f"masklab: internal error: {type(e).__name__}: {e} "
                       "(MASKLAB_DEBUG=1 shows the traceback)", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="masklab")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or chatter.")
@click.pass_context
def main(ctx: click.Context, quiet: bool) -> None:
    """masklab: image and video segmentation, prompting, matting and evaluation."""
    ctx.obj = {"quiet": quiet}
    if quiet:
        os.environ["MASKLAB_QUIET"] = "1"


def _register() -> None:
    from masklab.cli.app import app_cmd
    from masklab.cli.eval import eval_group
    from masklab.cli.general import convert, demo, info, weights
    from masklab.cli.interactive import everything_cmd, prompt_cmd
    from masklab.cli.label import label_cmd
    from masklab.cli.matting import composite_cmd, matte_cmd
    from masklab.cli.tasks import export_group, models_cmd, segment_group, train_group
    from masklab.cli.video import eval_video_interactive, track_cmd

    for cmd in (info, convert, weights, demo, eval_group, models_cmd, train_group,
                segment_group, export_group, prompt_cmd, everything_cmd, matte_cmd,
                composite_cmd, track_cmd, label_cmd, app_cmd):
        main.add_command(cmd)
    eval_group.add_command(eval_video_interactive)


_register()

if __name__ == "__main__":
    main()
