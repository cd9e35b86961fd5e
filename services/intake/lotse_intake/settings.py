from lotse_shared.settings import ServiceSettings
from pydantic import Field


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = Field(default=8001, description="HTTP port of intake.")
