from pydantic import Field

from lotse_shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = Field(default=8001, description="HTTP port of intake.")
