"""``lotse import``: files are cut into batches of whole records that keep their rows."""

from __future__ import annotations

import io
import json

from lotse_devstack.importer import csv_batches, jobsuche_batches, print_summary


def test_csv_batches_keep_the_header_whole_records_and_the_file_rows() -> None:
    text = (
        "\ufeffReferenz;Art;Titel;Betrieb;Ort;Beschreibung\n"
        "R1;Praktikum;A;B;Kassel;eins\n"
        'R2;Praktikum;A;B;Kassel;"zwei\nZeilen; mit Trenner"\n'
        "R3;Praktikum;A;B;Kassel;drei\n"
    )
    first, second = csv_batches(text, 2)
    assert (first.records, first.row_offset) == (2, 0)
    assert first.content.decode().splitlines()[0] == "Referenz;Art;Titel;Betrieb;Ort;Beschreibung"
    assert 'R2;Praktikum;A;B;Kassel;"zwei\nZeilen; mit Trenner"' in first.content.decode()
    # R3 is line 5 of the file and line 2 of its batch
    assert (second.records, second.row_offset) == (1, 3)
    assert second.content.decode().splitlines()[1].startswith("R3;")


def test_a_csv_without_rows_is_still_sent_for_its_header() -> None:
    (only,) = csv_batches("Referenz,Art\n", 10)
    assert (only.records, only.content) == (0, b"Referenz,Art\n")


def test_jobsuche_batches_from_every_document_shape() -> None:
    search = {"stellenangebote": [{"refnr": str(i)} for i in range(5)], "page": "1"}
    batches = list(jobsuche_batches(search, 2))
    assert [(b.records, b.row_offset) for b in batches] == [(2, 0), (2, 2), (1, 4)]
    assert json.loads(batches[2].content) == [{"refnr": "4"}]
    mixed = [search, {"referenznummer": "D"}]
    assert [b.records for b in jobsuche_batches(mixed, 10)] == [6]
    assert json.loads(next(jobsuche_batches({"referenznummer": "D"}, 10)).content) == [
        {"referenznummer": "D"}
    ]


def test_summary_lists_every_rejection() -> None:
    out = io.StringIO()
    print_summary(
        {
            "import_id": "i-1",
            "source": "ihk-kassel",
            "received": 3,
            "created": 1,
            "updated": 0,
            "unchanged": 1,
            "closed": 0,
            "rejected": [{"ref": None, "row": 4, "reason": "Referenz: empty"}],
        },
        out,
    )
    assert out.getvalue().splitlines() == [
        "import i-1 (ihk-kassel): 3 received, 1 created, 0 updated, 1 unchanged, 0 closed",
        "1 rejected:",
        "  row 4     (no ref)                 Referenz: empty",
    ]


def test_summary_lists_notices_after_rejections() -> None:
    out = io.StringIO()
    print_summary(
        {
            "import_id": "i-2",
            "source": "ba-jobsuche",
            "received": 1,
            "created": 1,
            "updated": 0,
            "unchanged": 0,
            "closed": 0,
            "rejected": [],
            "notices": [
                {"ref": "R-1", "row": 1, "reason": "hauptDkz 12345: no KldB 2010 code known"}
            ],
        },
        out,
    )
    assert out.getvalue().splitlines()[1:] == [
        "0 rejected",
        "1 notices:",
        "  row 1     R-1                      hauptDkz 12345: no KldB 2010 code known",
    ]
