"""Each service's access.py: who may see and change what, without a database."""

from __future__ import annotations

import pytest

from lotse_courses.access import check_may_add_course
from lotse_devstack.samples import CASEWORKER, person_body
from lotse_intake.access import check_may_keep, list_scope
from lotse_intake.domain.model import PersonDetails
from lotse_notifications.access import whose_inbox
from lotse_placement.access import is_partner, source_for
from lotse_shared.auth import Role
from lotse_shared.errors import Forbidden, RuleViolation
from tests.fakes.callers import who


def details(**changes: object) -> PersonDetails:
    return PersonDetails.model_validate(person_body(**changes))


def test_intake_a_caseworker_keeps_only_people_they_stay_responsible_for() -> None:
    check_may_keep(who(Role.CASEWORKER), details())  # among the contacts: fine
    with pytest.raises(Forbidden, match="contacts"):
        check_may_keep(who(Role.CASEWORKER, "other@landkreis-kassel.example"), details())
    with pytest.raises(Forbidden, match="district_id"):
        check_may_keep(who(Role.COORDINATOR, district="fulda"), details())
    with pytest.raises(Forbidden, match="mentor"):
        check_may_keep(who(Role.MENTOR), details())
    check_may_keep(who(Role.COORDINATOR, "c@landkreis-kassel.example"), details())


def test_intake_lists_are_narrowed_to_what_the_viewer_sees() -> None:
    assert list_scope(who(Role.CASEWORKER), None, None) == ("kassel", CASEWORKER)
    assert list_scope(who(Role.CASEWORKER), None, "someone@else.example") is None
    assert list_scope(who(Role.CASEWORKER), "fulda", None) is None
    assert list_scope(who(Role.COORDINATOR), None, "x@y.example") == ("kassel", "x@y.example")
    assert list_scope(who(Role.PARTNER), None, None) is None


def test_notifications_only_admins_open_another_inbox() -> None:
    assert whose_inbox(who(Role.CASEWORKER), None) == CASEWORKER
    assert whose_inbox(who(Role.CASEWORKER), CASEWORKER.upper()) == CASEWORKER
    with pytest.raises(Forbidden):
        whose_inbox(who(Role.CASEWORKER), "boss@landkreis-kassel.example")
    assert whose_inbox(who(Role.ADMIN), "Boss@x.example") == "boss@x.example"


def test_placement_a_partner_publishes_as_itself_only() -> None:
    agency = who(Role.PARTNER, "api@ba.example", partner_id="ba-jobsuche")
    assert is_partner(agency)
    assert source_for(agency, None) == "ba-jobsuche"
    with pytest.raises(RuleViolation, match="source"):
        source_for(agency, "ihk-kassel")
    assert source_for(who(Role.CASEWORKER), None) == "caseworker"
    assert source_for(who(Role.COORDINATOR), "ihk-kassel") == "ihk-kassel"


def test_courses_are_added_for_the_viewers_district_only() -> None:
    check_may_add_course(who(Role.CASEWORKER), "kassel")
    with pytest.raises(Forbidden, match="district_id"):
        check_may_add_course(who(Role.CASEWORKER), "fulda")
