"""Run notifications: ``python -m lotse_notifications`` (settings: LOTSE_* variables)."""

from lotse_shared.runner import load_settings, serve

from .bootstrap import create_app
from .settings import NotificationsSettings


def main() -> None:
    serve(load_settings(NotificationsSettings), create_app)


if __name__ == "__main__":
    main()
