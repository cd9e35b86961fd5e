from pydantic import Field

from lotse_shared.settings import ServiceSettings


class PlacementSettings(ServiceSettings):
    service_name: str = "placement"
    http_port: int = Field(default=8003, description="HTTP port of placement.")
    suggestions_per_set: int = Field(
        default=5, ge=1, le=50, description="How many suggestions one alert carries at most."
    )
    people_per_opening: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="A new or changed opening is suggested to at most this many people: "
        "those it suits best.",
    )
    closed_case_retention_days: float = Field(
        default=730,
        gt=0,
        description="LOTSE_CLOSED_CASE_RETENTION_DAYS: a closed case (its history and notes "
        "included) is deleted this many days after it was closed.",
    )
    retention_sweep_s: float = Field(
        default=3600,
        gt=0,
        description="How often placement looks for closed cases past their retention.",
    )
