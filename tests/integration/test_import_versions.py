"""placement: which version of a Jobsuche posting holds, through the real import path."""

from __future__ import annotations

from typing import Any

from lotse_devstack.samples import TODAY
from lotse_placement.bootstrap import Overrides, create_app
from lotse_shared.auth import Role
from tests.support import running

REF = "10000-1199990001-S"


def placement_app():
    return create_app(overrides=Overrides(today=lambda: TODAY))


def posting(modified: str, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "referenznummer": REF,
        "stellenangebotsTitel": "Helfer/in Lager",
        "stellenangebotsart": "ARBEIT",
        "firma": "Paketzentrum Lohfelden GmbH",
        "hauptberuf": "Helfer/in - Lagerwirtschaft",
        "stellenlokationen": [
            {"adresse": {"plz": "34253", "ort": "Lohfelden"}},
            {"adresse": {"plz": "34369", "ort": "Hofgeismar"}},
        ],
        "aenderungsdatum": modified,
        "anzahlOffeneStellen": 2,
        "fuerFluechtlingeGeeignet": True,
        "hauptDkz": "12345",
    }
    record.update(changes)
    return record


async def test_an_older_version_joins_the_history_and_a_newer_one_wins(
    service_env, rabbit_url, namespace
):
    app = placement_app()
    async with running(app, role=Role.COORDINATOR) as http:
        first = await http.post("/imports/jobsuche", json=[posting("2026-11-20T10:00:00")])
        assert first.status_code == 200, first.text
        assert first.json()["created"] == 1
        # an unknown hauptDkz: imported, and named in the report
        assert first.json()["notices"] == [
            {"ref": REF, "row": 1, "reason": "hauptDkz 12345: no KldB 2010 code known"}
        ]
        opening_id = (await http.get("/openings")).json()[0]["opening_id"]

        # a later feed brings an older version: it does not win, but is kept
        old = posting("2026-11-18T09:00:00", anzahlOffeneStellen=5)
        second = (await http.post("/imports/jobsuche", json=[old])).json()
        assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 1)
        assert "not applied, kept in the opening's history" in second["notices"][-1]["reason"]
        shown = (await http.get(f"/openings/{opening_id}")).json()
        assert shown["seats"] == 2
        assert shown["suitable_for_refugees"] is True
        assert shown["agency_occupation_code"] == "12345"
        assert [p["municipality"] for p in shown["other_locations"]] == ["Hofgeismar"]
        assert shown["source_modified_at"].startswith("2026-11-20T10:00:00")
        [kept] = shown["history"]
        assert kept["applied"] is False
        assert kept["source_modified_at"].startswith("2026-11-18T09:00:00")
        assert kept["earlier_values"]["seats"] == 5
        # the same old feed again does not keep it twice
        await http.post("/imports/jobsuche", json=[old])
        assert len((await http.get(f"/openings/{opening_id}")).json()["history"]) == 1

        # a newer version wins; the one it replaces joins the history, applied
        new = posting("2026-11-21T08:00:00", anzahlOffeneStellen="3")
        third = (await http.post("/imports/jobsuche", json=[new])).json()
        assert third["updated"] == 1
        shown = (await http.get(f"/openings/{opening_id}")).json()
        assert shown["seats"] == 3
        assert [(v["applied"], v["earlier_values"].get("seats")) for v in shown["history"]] == [
            (False, 5),
            (True, 2),
        ]

        # one feed with two versions: the later one wins, the earlier joins the history
        a = posting("2026-11-22T08:00:00", anzahlOffeneStellen=7)
        b = posting("2026-11-23T08:00:00", anzahlOffeneStellen=4)
        fourth = (await http.post("/imports/jobsuche", json=[b, a])).json()
        assert (fourth["received"], fourth["updated"], fourth["rejected"]) == (2, 1, [])
        shown = (await http.get(f"/openings/{opening_id}")).json()
        assert shown["seats"] == 4
        assert shown["history"][-1]["applied"] is False
        assert shown["history"][-1]["earlier_values"]["seats"] == 7
        listed = (await http.get("/openings")).json()[0]
        assert listed["suitable_for_refugees"] is True
