"""Run placement: ``python -m lotse_placement`` (settings from LOTSE_* environment variables)."""

from lotse_shared.runner import load_settings, serve

from .bootstrap import create_app
from .settings import PlacementSettings


def main() -> None:
    serve(load_settings(PlacementSettings), create_app)


if __name__ == "__main__":
    main()
