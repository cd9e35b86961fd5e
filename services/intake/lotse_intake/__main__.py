"""Run intake: ``python -m lotse_intake`` (settings from LOTSE_* environment variables)."""

from lotse_shared.runner import serve

from .bootstrap import create_app
from .settings import IntakeSettings


def main() -> None:
    serve(IntakeSettings(), create_app)


if __name__ == "__main__":
    main()
