"""The district's week that ``make bench-alerts`` plays: people, openings, course events
and the simulated calendar, generated once (seeded) and played against both runs.

Plain data only; :mod:`bench.alerts` turns it into events and publishes them. Why these
figures: see the docstring of :mod:`bench.alerts`.
"""

from __future__ import annotations

import os
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from lotse_shared.contracts import partner as p
from lotse_shared.contracts.common import (
    CefrLevel,
    ContactRole,
    CourseType,
    EducationLevel,
    Language,
    OpeningType,
    ResidenceStatus,
    Sector,
    WorkPermission,
)
from lotse_shared.contracts.intake import Consent, PersonSnapshotV1, ResponsibleContact
from lotse_shared.places import all_places

BERLIN = ZoneInfo("Europe/Berlin")
DISTRICT = "kassel"
SCHOOL = "vhs-region-kassel"
PROVIDER = "VHS Region Kassel"
DISTRICT_COORDINATOR = "bildungskoordination@landkreis-kassel.example"
DAYS = ("Mo", "Tu", "We", "Th", "Fr")
SLOTS = (time(9, 0), time(11, 0), time(13, 0), time(15, 0))  # course events during the day
ATTENDANCE_SLOT = 2  # the schools report the day's (morning) sessions at 13:00


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


@dataclass(frozen=True)
class Config:
    """Sizes, from the environment (``BENCH_ALERTS_*``); defaults are issue 12's figures."""

    people: int = 4000
    caseworkers: int = 27
    openings: int = 300  # new in the week
    stock: int = 200  # open before Monday
    withdrawn_per_day: int = 5  # 3 older ones at 08:00, 2 of the day's new ones at 14:00
    completions: int = 60
    dropouts: int = 10
    risks: int = 20
    in_courses: int = 300  # enrolled before the week (incl. the 90 above), attendance daily
    seed: int = 12
    base: str = "ac679f4"
    runs: tuple[str, ...] = ("before", "after")
    quiet_s: float = 3.0
    settle_timeout_s: float = 900.0

    @classmethod
    def from_env(cls) -> Config:
        people = _env_int("BENCH_ALERTS_PEOPLE", cls.people)
        scale = people / cls.people  # smaller runs scale the course events with the people
        completions = _env_int("BENCH_ALERTS_COMPLETIONS", max(5, round(cls.completions * scale)))
        dropouts = _env_int("BENCH_ALERTS_DROPOUTS", max(2, round(cls.dropouts * scale)))
        risks = _env_int("BENCH_ALERTS_RISKS", max(3, round(cls.risks * scale)))
        in_courses = _env_int("BENCH_ALERTS_IN_COURSES", max(30, round(cls.in_courses * scale)))
        openings = _env_int("BENCH_ALERTS_OPENINGS", max(10, round(cls.openings * scale)))
        runs = tuple(
            r.strip() for r in os.environ.get("BENCH_ALERTS_RUNS", "before,after").split(",")
        )
        if not set(runs) <= {"before", "after"} or not runs:
            raise SystemExit("BENCH_ALERTS_RUNS: before, after or both (comma-separated)")
        config = cls(
            people=people,
            caseworkers=_env_int(
                "BENCH_ALERTS_CASEWORKERS", max(1, round(cls.caseworkers * scale))
            ),
            openings=openings,
            stock=_env_int("BENCH_ALERTS_STOCK", max(10, round(cls.stock * scale))),
            withdrawn_per_day=_env_int(
                "BENCH_ALERTS_WITHDRAWN_PER_DAY",
                max(2, round(cls.withdrawn_per_day * openings / cls.openings)),
            ),
            completions=completions,
            dropouts=dropouts,
            risks=risks,
            in_courses=max(in_courses, completions + dropouts + risks),
            seed=_env_int("BENCH_ALERTS_SEED", cls.seed),
            base=os.environ.get("BENCH_ALERTS_BASE", cls.base),
            runs=runs,
            quiet_s=float(os.environ.get("BENCH_ALERTS_QUIET_S", str(cls.quiet_s))),
            settle_timeout_s=float(
                os.environ.get("BENCH_ALERTS_SETTLE_TIMEOUT_S", str(cls.settle_timeout_s))
            ),
        )
        if config.completions + config.dropouts + config.risks > config.people:
            raise SystemExit("more course events than people")
        return config


# --- who --------------------------------------------------------------------------------

GIVEN = (
    "Amal", "Yonas", "Olena", "Ahmad", "Mariam", "Hamid", "Fatima", "Dawit", "Oksana", "Omar",
    "Zahra", "Samir", "Aster", "Mustafa", "Nadia", "Rahim", "Layla", "Tesfay", "Iryna", "Bilal",
    "Hevin", "Karim", "Selam", "Dmytro", "Nour", "Reza", "Shirin", "Abdi", "Hana", "Yusuf",
)  # fmt: skip
FAMILY = (
    "Haddad", "Tesfay", "Kovalenko", "Rahimi", "Al-Hassan", "Ahmadi", "Mohammadi", "Yilmaz",
    "Bondarenko", "Hussein", "Kebede", "Nasser", "Sultani", "Shevchenko", "Osman", "Karimi",
    "Berhane", "Ali", "Hosseini", "Ibrahim", "Melnyk", "Khalil", "Haile", "Abdullah", "Saleh",
)  # fmt: skip
STAFF_GIVEN = (
    "Petra", "Murat", "Sabine", "Jan", "Anna", "Thomas", "Claudia", "Stefan", "Katrin", "Michael",
    "Julia", "Andreas", "Nicole", "Markus", "Sandra", "Tobias", "Melanie", "Christian", "Heike",
    "Florian", "Susanne", "Daniel", "Birgit", "Sven", "Martina", "Lukas", "Ayse", "Dirk",
)  # fmt: skip
STAFF_FAMILY = (
    "Schmidt", "Yilmaz", "Müller", "Becker", "Hoffmann", "Wagner", "Schäfer", "Koch", "Bauer",
    "Richter", "Klein", "Wolf", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann",
    "Lange", "Werner", "Krause", "Meier", "Lehmann", "Köhler", "Fischer", "Weber", "Demir",
)  # fmt: skip

# KldB 2010 codes per sector (fifth digit: 1 helper, 2 skilled)
OCCUPATIONS: dict[Sector, tuple[str, ...]] = {
    Sector.LOGISTIK: ("51311", "51322", "52122", "51312"),
    Sector.HANDWERK: ("34212", "24412", "34202", "33212"),
    Sector.GASTRONOMIE: ("29301", "63301", "29302", "63302"),
    Sector.BAU: ("32101", "32122", "32212", "32201"),
    Sector.PFLEGE: ("82101", "81301", "82102", "81302"),
    Sector.INDUSTRIE: ("24201", "25101", "24232", "25212"),
    Sector.HANDEL: ("62102", "62101", "62182", "62112"),
    Sector.REINIGUNG: ("54101", "54102", "54111"),
    Sector.LANDWIRTSCHAFT: ("11101", "12101", "12112"),
    Sector.BUERO: ("71402", "71302", "71301"),
    Sector.SONSTIGE: ("93101", "83111", "84301"),
}
TITLES: dict[OpeningType, str] = {
    OpeningType.PRAKTIKUM: "Praktikum",
    OpeningType.EINSTIEGSQUALIFIZIERUNG: "EQ",
    OpeningType.AUSBILDUNG: "Ausbildung",
    OpeningType.BESCHAEFTIGUNG: "Helfer/in",
}
SECTOR_WORD: dict[Sector, str] = {
    Sector.LOGISTIK: "Lager und Logistik",
    Sector.HANDWERK: "Handwerk",
    Sector.GASTRONOMIE: "Küche und Service",
    Sector.BAU: "Hoch- und Tiefbau",
    Sector.PFLEGE: "Pflege",
    Sector.INDUSTRIE: "Produktion",
    Sector.HANDEL: "Verkauf",
    Sector.REINIGUNG: "Gebäudereinigung",
    Sector.LANDWIRTSCHAFT: "Garten- und Landbau",
    Sector.BUERO: "Büro",
    Sector.SONSTIGE: "Dienstleistung",
}
COURSE_WORD = {
    CourseType.INTEGRATIONSKURS: "Integrationskurs",
    CourseType.BERUFSSPRACHKURS: "Berufssprachkurs",
}
DROPOUT_REASONS = ("Umzug", "Arbeitsaufnahme", "Kinderbetreuung", "Krankheit", "unbekannt")


@dataclass(frozen=True)
class Contact:
    name: str
    email: str
    language: Language = Language.DE


def _staff(i: int, domain: str, prefix: str = "") -> Contact:
    given = STAFF_GIVEN[i % len(STAFF_GIVEN)]
    family = STAFF_FAMILY[(i * 7 + i // len(STAFF_GIVEN)) % len(STAFF_FAMILY)]
    local = f"{prefix}{given}.{family}".lower()
    local = local.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    return Contact(f"{given} {family}", f"{local}.{i:03d}@{domain}")


# --- what happens -----------------------------------------------------------------------


@dataclass(frozen=True)
class OpeningPlan:
    producer: str
    report: p.OpeningReportedV1


CourseEventKind = Literal["completion", "dropout", "risk", "attendance"]


@dataclass(frozen=True)
class CourseEvent:
    kind: CourseEventKind
    person: int  # index into Scenario.people
    course: p.CourseRef
    on: date
    detail: str = ""


@dataclass
class Day:
    date: date
    new: list[OpeningPlan] = field(default_factory=list)
    withdraw_morning: list[OpeningPlan] = field(default_factory=list)  # older ones, 08:00
    withdraw_afternoon: list[OpeningPlan] = field(default_factory=list)  # today's new, 14:00
    slots: list[list[CourseEvent]] = field(default_factory=lambda: [[] for _ in SLOTS])


@dataclass
class Scenario:
    config: Config
    monday: date
    caseworkers: list[Contact]
    people: list[PersonSnapshotV1]
    stock: list[OpeningPlan]
    enrolments: list[tuple[int, p.CourseDetails]]
    setup_attendance: list[CourseEvent]
    days: list[Day]
    roles: dict[str, list[int]]  # completers, dropouts, risks, others in courses

    def caseworker_of(self, person: int) -> Contact:
        return self.caseworkers[person % len(self.caseworkers)]

    def at(self, day: date, clock: time) -> datetime:
        """A Berlin wall-clock moment as UTC (what the clock file holds)."""
        return datetime.combine(day, clock, tzinfo=BERLIN).astimezone(UTC)

    @property
    def setup_day(self) -> date:
        return self.monday - timedelta(days=3)  # the Friday before

    def summary(self) -> dict[str, int]:
        return {
            "people": len(self.people),
            "caseworkers": len(self.caseworkers),
            "with_mentor": sum(
                any(c.role is ContactRole.MENTOR for c in x.contacts) for x in self.people
            ),
            "with_guide": sum(
                any(c.role is ContactRole.INTEGRATION_GUIDE for c in x.contacts)
                for x in self.people
            ),
            "with_own_coordinator": sum(
                any(c.role is ContactRole.EDUCATION_COORDINATOR for c in x.contacts)
                for x in self.people
            ),
            "stock_openings": len(self.stock),
            "new_openings": sum(len(d.new) for d in self.days),
            "withdrawn": sum(
                len(d.withdraw_morning) + len(d.withdraw_afternoon) for d in self.days
            ),
            "enrolled": len(self.enrolments),
            "completions": sum(
                e.kind == "completion" for d in self.days for s in d.slots for e in s
            ),
            "dropouts": sum(e.kind == "dropout" for d in self.days for s in d.slots for e in s),
            "attendance_risks": sum(
                e.kind == "risk" for d in self.days for s in d.slots for e in s
            ),
            "attendance_reports": sum(
                e.kind == "attendance" for d in self.days for s in d.slots for e in s
            ),
        }


def next_monday(today: date) -> date:
    return today + timedelta(days=7 - today.weekday())


def build(config: Config, today: date | None = None) -> Scenario:
    rng = random.Random(config.seed)
    monday = next_monday(today or datetime.now(BERLIN).date())
    week = [monday + timedelta(days=i) for i in range(5)]
    district_places = [pl for pl in all_places().values() if pl.in_district]
    places = list(all_places().values())

    # who is in a course, and what happens to them this week
    order = list(range(config.people))
    rng.shuffle(order)
    n_c, n_d, n_r = config.completions, config.dropouts, config.risks
    completers = order[:n_c]
    dropouts = order[n_c : n_c + n_d]
    risks = order[n_c + n_d : n_c + n_d + n_r]
    others = order[n_c + n_d + n_r : config.in_courses]
    completer_set = set(completers)

    caseworkers = [_staff(i, "landkreis-kassel.example") for i in range(config.caseworkers)]
    n_mentors = max(1, config.people // 12)  # a volunteer mentor has ~3 mentees
    n_guides = max(1, config.people // 100)  # an integration guide ~25 people
    mentors = [_staff(i + 100, "berufspaten.example") for i in range(n_mentors)]
    guides = [_staff(i + 500, "integrationslotsen.example", "lotse.") for i in range(n_guides)]
    coordinators = [
        Contact("Bildungskoordination Nord", "bildungskoordination.nord@landkreis-kassel.example"),
        Contact("Bildungskoordination Süd", "bildungskoordination.sued@landkreis-kassel.example"),
    ]
    statuses = [
        (ResidenceStatus.AUFENTHALTSERLAUBNIS, 60),
        (ResidenceStatus.AUFENTHALTSGESTATTUNG, 18),
        (ResidenceStatus.DULDUNG, 8),
        (ResidenceStatus.NIEDERLASSUNGSERLAUBNIS, 10),
        (ResidenceStatus.AUSBILDUNGSDULDUNG, 2),
        (ResidenceStatus.BESCHAEFTIGUNGSDULDUNG, 2),
    ]
    people = []
    for i in range(config.people):
        status = rng.choices([s for s, _ in statuses], [w for _, w in statuses])[0]
        if status in (ResidenceStatus.AUFENTHALTSGESTATTUNG, ResidenceStatus.DULDUNG):
            permission = rng.choice([WorkPermission.NEEDS_APPROVAL, WorkPermission.APPROVED])
        elif status in (
            ResidenceStatus.AUSBILDUNGSDULDUNG,
            ResidenceStatus.BESCHAEFTIGUNGSDULDUNG,
        ):
            permission = WorkPermission.APPROVED
        else:
            permission = WorkPermission.ALLOWED
        level: CefrLevel | None = rng.choices(
            [None, CefrLevel.A1, CefrLevel.A2, CefrLevel.B1], [5, 30, 40, 25]
        )[0]
        if i in completer_set:  # an integration course's B1 exam: they have A2 now
            status, permission, level = (
                ResidenceStatus.AUFENTHALTSERLAUBNIS,
                WorkPermission.ALLOWED,
                CefrLevel.A2,
            )
        cw = caseworkers[i % len(caseworkers)]
        contacts = [ResponsibleContact(role=ContactRole.CASEWORKER, name=cw.name, email=cw.email)]
        if rng.random() < 0.25:
            m = mentors[rng.randrange(n_mentors)]
            lang = Language.EN if rng.random() < 0.15 else Language.DE
            contacts.append(
                ResponsibleContact(
                    role=ContactRole.MENTOR, name=m.name, email=m.email, language=lang
                )
            )
        if rng.random() < 0.25:
            g = guides[rng.randrange(n_guides)]
            contacts.append(
                ResponsibleContact(role=ContactRole.INTEGRATION_GUIDE, name=g.name, email=g.email)
            )
        if rng.random() < 0.10:  # the rest: the district's coordinator (LOTSE_COORDINATORS)
            c = coordinators[rng.randrange(2)]
            contacts.append(
                ResponsibleContact(
                    role=ContactRole.EDUCATION_COORDINATOR, name=c.name, email=c.email
                )
            )
        sectors = rng.sample(list(Sector), rng.choice([1, 2, 2, 3]))
        experience = []
        if rng.random() < 0.4:
            experience = [rng.choice(OCCUPATIONS[rng.choice(list(Sector))])]
        people.append(
            PersonSnapshotV1(
                person_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                district_id=DISTRICT,
                revision=1,
                display_name=f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}",
                birth_year=rng.randint(1968, 2006),
                municipality=rng.choice(district_places).name,
                german_level=level,
                residence_status=status,
                work_permission=permission,
                driving_licence=rng.random() < 0.3,
                max_commute_km=rng.choice([10, 15, 20, 25, 30, 40]),
                sectors_of_interest=sectors,
                experience_occupations=experience,
                education_level=rng.choice(list(EducationLevel)),
                consent=Consent(matching=True, share_with_employers=True, email_notifications=True),
                contacts=contacts,
            )
        )

    # openings: the stock, then each day's new ones; refs stay, so a re-send is an update
    counter = iter(range(1, 10**6))

    def opening(start_base: date) -> OpeningPlan:
        k = next(counter)
        sector = rng.choice(list(Sector))
        otype = rng.choices(list(OpeningType), [25, 10, 25, 40])[0]
        code = rng.choice(OCCUPATIONS[sector])
        if otype is OpeningType.BESCHAEFTIGUNG:
            need = rng.choices(
                [CefrLevel.A1, CefrLevel.A2, CefrLevel.B1, CefrLevel.B2], [10, 45, 35, 10]
            )[0]
        elif otype is OpeningType.PRAKTIKUM:
            need = rng.choices([CefrLevel.A1, CefrLevel.A2, CefrLevel.B1], [20, 60, 20])[0]
        else:
            need = rng.choices([CefrLevel.A2, CefrLevel.B1, CefrLevel.B2], [20, 70, 10])[0]
        if sector in (Sector.HANDWERK, Sector.BAU) and rng.random() < 0.4:
            producer, ref = "hwk-kassel", f"HWK-2026-{k:05d}"
        elif sector in (Sector.INDUSTRIE, Sector.HANDEL, Sector.BUERO) and rng.random() < 0.2:
            producer, ref = "ihk-kassel", f"IHK-2026-{k:05d}"
        else:
            producer, ref = "ba-jobsuche", f"10001-{1_000_000_000 + k}-S"
        place = rng.choice(places) if rng.random() < 0.65 else all_places()["Kassel"]
        start = None if rng.random() < 0.15 else start_base + timedelta(days=rng.randint(-10, 240))
        if otype is OpeningType.BESCHAEFTIGUNG and code.endswith("1"):
            title = f"Helfer/in {SECTOR_WORD[sector]}"
        elif otype is OpeningType.BESCHAEFTIGUNG:
            title = f"Fachkraft {SECTOR_WORD[sector]}"
        else:
            title = f"{TITLES[otype]} {SECTOR_WORD[sector]}"
        return OpeningPlan(
            producer,
            p.OpeningReportedV1(
                source_ref=ref,
                district_id=DISTRICT,
                opening_type=otype,
                title=title,
                employer=f"{rng.choice(STAFF_FAMILY)} {SECTOR_WORD[sector]} {place.name}",
                occupation_code=code,
                sector=sector,
                required_german_level=need,
                location=p.OpeningLocation(municipality=place.name),
                start_date=start,
                seats=rng.choice([1, 1, 1, 2, 3]),
            ),
        )

    stock = [opening(monday) for _ in range(config.stock)]
    days = [Day(d) for d in week]
    per_day = [config.openings // 5 + (1 if i < config.openings % 5 else 0) for i in range(5)]
    open_now = list(stock)
    # 3 of 5 older ones in the morning, 2 of 5 of the day's new ones in the afternoon
    w = config.withdrawn_per_day
    afternoon_n = 0 if w < 2 else max(1, round(w * 2 / 5))
    morning_n = w - afternoon_n
    for day, n in zip(days, per_day, strict=True):
        day.withdraw_morning = rng.sample(open_now, min(morning_n, len(open_now)))
        open_now = [o for o in open_now if o not in day.withdraw_morning]
        day.new = [opening(day.date) for _ in range(n)]
        day.withdraw_afternoon = rng.sample(day.new, min(afternoon_n, len(day.new)))
        open_now += [o for o in day.new if o not in day.withdraw_afternoon]

    # courses: each day's completers finish one integration course that ends that day;
    # everyone else in a course is in one that runs on after the week
    enrolments: list[tuple[int, p.CourseDetails]] = []
    course_of: dict[int, p.CourseDetails] = {}

    def course(ref: str, ctype: CourseType, target: CefrLevel, ends: date) -> p.CourseDetails:
        return p.CourseDetails(
            provider=PROVIDER,
            course_ref=ref,
            course_type=ctype,
            title=f"{COURSE_WORD[ctype]} {ref}",
            target_level=target,
            starts_on=ends - timedelta(days=rng.randint(150, 300)),
            ends_on=ends,
            municipality=rng.choice(district_places).name,
            teaching_units=700 if ctype is CourseType.INTEGRATIONSKURS else 400,
        )

    completion_day = {person: i % 5 for i, person in enumerate(completers)}
    for d in range(5):
        group = [x for x in completers if completion_day[x] == d]
        details = course(f"IK-2026-E{d + 1}", CourseType.INTEGRATIONSKURS, CefrLevel.B1, week[d])
        for x in group:
            course_of[x] = details
    running = dropouts + risks + others
    for start in range(0, len(running), 20):
        ends = monday + timedelta(days=rng.randint(30, 150))
        k = start // 20 + 1
        if rng.random() < 0.3:
            details = course(f"BSK-2026-{k:03d}", CourseType.BERUFSSPRACHKURS, CefrLevel.B2, ends)
        else:
            details = course(f"IK-2026-{k:03d}", CourseType.INTEGRATIONSKURS, CefrLevel.B1, ends)
        for x in running[start : start + 20]:
            course_of[x] = details
    enrolments = [(x, course_of[x]) for x in [*completers, *running]]

    def ref(x: int) -> p.CourseRef:
        return p.CourseRef(provider=PROVIDER, course_ref=course_of[x].course_ref)

    # attendance at risk: 4 sessions present last week (rate 1.0); on the day, the school
    # reports two missed sessions at once (4/5 = 0.8 is not below the threshold, 4/6 is)
    previous_week = [monday - timedelta(days=7 - i) for i in range(4)]
    setup_attendance = [
        CourseEvent("attendance", x, ref(x), on, "present") for x in risks for on in previous_week
    ]
    risk_day = {x: i % 5 for i, x in enumerate(risks)}
    drop_day = {x: i % 5 for i, x in enumerate(dropouts)}
    for d, day in enumerate(days):
        for x in completers:
            if completion_day[x] == d:
                day.slots[rng.randrange(len(SLOTS))].append(
                    CourseEvent("completion", x, ref(x), day.date)
                )
        for x in dropouts:
            if drop_day[x] == d:
                day.slots[rng.randrange(len(SLOTS))].append(
                    CourseEvent("dropout", x, ref(x), day.date, rng.choice(DROPOUT_REASONS))
                )
        for x in risks:
            if risk_day[x] == d:
                day.slots[rng.randrange(len(SLOTS))].append(
                    CourseEvent("risk", x, ref(x), day.date)
                )
        # the day's sessions of everyone still in a course (not those whose school
        # reports in batches: the attendance risks, until their day)
        present = [
            x
            for x in [*completers, *dropouts, *others, *risks]
            if (x not in completion_day or completion_day[x] > d)
            and (x not in drop_day or drop_day[x] > d)
            and (x not in risk_day or risk_day[x] < d)
        ]
        day.slots[ATTENDANCE_SLOT] += [
            CourseEvent("attendance", x, ref(x), day.date, "present") for x in present
        ]
    return Scenario(
        config=config,
        monday=monday,
        caseworkers=caseworkers,
        people=people,
        stock=stock,
        enrolments=enrolments,
        setup_attendance=setup_attendance,
        days=days,
        roles={
            "completers": completers,
            "dropouts": dropouts,
            "risks": risks,
            "others_in_courses": others,
        },
    )
