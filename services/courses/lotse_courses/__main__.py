"""Run courses: ``python -m lotse_courses`` (settings from LOTSE_* environment variables)."""

from lotse_shared.runner import load_settings, serve

from .bootstrap import create_app
from .settings import CoursesSettings


def main() -> None:
    serve(load_settings(CoursesSettings), create_app)


if __name__ == "__main__":
    main()
