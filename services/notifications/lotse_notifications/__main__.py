"""Run notifications: ``python -m lotse_notifications`` (settings: LOTSE_* variables)."""

from lotse_shared.runner import serve

from .bootstrap import create_app
from .settings import NotificationsSettings


def main() -> None:
    serve(NotificationsSettings(), create_app)


if __name__ == "__main__":
    main()
