from pydantic import Field

from lotse_shared.settings import ServiceSettings


class CoursesSettings(ServiceSettings):
    service_name: str = "courses"
    http_port: int = Field(default=8002, description="HTTP port of courses.")
