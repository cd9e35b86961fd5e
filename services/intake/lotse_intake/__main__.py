"""Run intake: ``python -m lotse_intake`` (settings from LOTSE_* environment variables)."""

from lotse_shared.runner import load_settings, serve

from .bootstrap import create_app
from .settings import IntakeSettings


def main() -> None:
    serve(load_settings(IntakeSettings), create_app)


if __name__ == "__main__":
    main()
