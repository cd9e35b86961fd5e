from pydantic import Field

from lotse_shared.settings import ServiceSettings


class PlacementSettings(ServiceSettings):
    service_name: str = "placement"
    http_port: int = Field(default=8003, description="HTTP port of placement.")
    suggestions_per_set: int = Field(
        default=5, ge=1, le=50, description="How many suggestions one alert carries at most."
    )
