from lotse_shared.settings import ServiceSettings
from pydantic import Field


class CoursesSettings(ServiceSettings):
    service_name: str = "courses"
    http_port: int = Field(default=8002, description="HTTP port of courses.")
