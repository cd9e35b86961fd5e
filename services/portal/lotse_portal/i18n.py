"""German first, English by the user's choice: the page texts and the labels of codes.

Templates write German and pass it through ``t``; English is looked up by the German
text, so a missing translation shows German rather than nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

LANGUAGES = ("de", "en")

ENGLISH: Mapping[str, str] = {
    "Meine Fälle": "My caseload",
    "Meine Begleitungen": "The people I accompany",
    "Fälle des Landkreises": "The district's caseload",
    "Posteingang": "Inbox",
    "Stellen": "Openings",
    "Kennzahlen": "District figures",
    "Person anlegen": "Register a person",
    "Abmelden": "Sign out",
    "Angemeldet als": "Signed in as",
    "Name": "Name",
    "Wohnort": "Municipality",
    "Deutsch": "German",
    "erreicht": "reached",
    "Ziel": "forecast",
    "Kurs": "Course",
    "Anwesenheit": "Attendance",
    "Vorschläge": "Suggestions",
    "Vermittlung": "Placement",
    "Ungelesen": "Unread",
    "Hinweise": "Flags",
    "Suchen": "Search",
    "Filtern": "Filter",
    "alle": "all",
    "Sortieren nach": "Sort by",
    "Stufe": "Stage",
    "Niveau": "Level",
    "Personen": "people",
    "Keine Personen gefunden.": "No people found.",
    "Anwesenheit gefährdet": "Attendance at risk",
    "Kurs abgebrochen": "Course dropped",
    "Arbeitserlaubnis beantragt": "Work permission pending",
    "Nicht verfügbar": "Not available",
    "Dieser Teil ist gerade nicht verfügbar": "This part is not available right now",
    "Zurück zu meinen Fällen": "Back to my caseload",
    "Profil": "Profile",
    "Einwilligungen": "Consent",
    "Zuständige": "Responsible contacts",
    "Kurse": "Courses",
    "Prüfungen": "Exams",
    "Offene Vorschläge": "Open suggestions",
    "Vorschlagen": "Propose",
    "Verwerfen": "Dismiss",
    "Grund": "Reason",
    "Warum nicht?": "Why not?",
    "Vermittlungsfälle": "Placement cases",
    "Verlauf": "History",
    "Nächste Stufe": "Next stage",
    "am": "on",
    "Speichern": "Save",
    "Abschließen": "Close",
    "Benachrichtigungen": "Alerts",
    "Bearbeiten": "Edit",
    "Alle als gelesen markieren": "Mark all read",
    "Gelesen": "Read",
    "Archivieren": "Archive",
    "Archiv": "Archive",
    "Nur ungelesene": "Unread only",
    "Weiter": "Next",
    "Zurück": "Previous",
    "Passende Personen": "People it suits",
    "Vorschlagen an": "Propose to",
    "Ergebnis": "Score",
    "Gründe": "Reasons",
    "Arbeitgeber": "Employer",
    "Art": "Type",
    "Branche": "Sector",
    "Ort": "Town",
    "Beginn bis": "Starts by",
    "Deutsch höchstens": "German at most",
    "Freie Plätze": "Free seats",
    "Für Geflüchtete geeignet (laut Arbeitsagentur)": (
        "Suitable for refugees (according to the employment agency)"
    ),
    "Ja": "Yes",
    "Nein": "No",
    "Trichter": "Funnel",
    "nach Branche": "by sector",
    "nach Wohnort": "by municipality",
    "Monat für Monat": "Month by month",
    "CSV herunterladen": "Download CSV",
    "Bitte prüfen Sie die markierten Felder.": "Please check the marked fields.",
    "Vorname": "Given name",
    "Nachname": "Family name",
    "Geburtsjahr": "Birth year",
    "Aufenthaltsstatus": "Residence status",
    "Arbeitserlaubnis": "Work permission",
    "Führerschein": "Driving licence",
    "Pendelweg höchstens (km)": "Longest commute (km)",
    "Verfügbar ab": "Available from",
    "Interessen": "Sectors of interest",
    "Schulbildung": "Education",
    "Telefon": "Phone",
    "E-Mail": "Email",
    "Vermittlung (Abgleich mit Stellen)": "Matching with openings",
    "Weitergabe an Arbeitgeber": "Sharing with employers",
    "E-Mail-Benachrichtigungen": "Email notifications",
    "Zuständige Fachkraft (E-Mail)": "Responsible caseworker (email)",
    "Zuständige Fachkraft (Name)": "Responsible caseworker (name)",
    "Abgemeldet": "Signed out",
    "Sie sind abgemeldet.": "You are signed out.",
    "Wieder anmelden": "Sign in again",
    "Sprache": "Language",
    "Live": "Live",
    "Erledigt": "Done",
    "keine": "none",
    "Was fehlt": "What would unlock it",
    "Entfernung": "Distance",
    "Stand": "As of",
    "Seite": "Page",
    "Abschnitte": "Sections",
    "Beginn": "Start",
    "Bitte versuchen Sie es in einigen Minuten noch einmal.": "Please try again in a few minutes.",
    "Das Formular war nicht mehr gültig (zum Beispiel nach einer neuen Anmeldung). Bitte laden "
    "Sie die Seite neu und versuchen Sie es noch einmal.": "The form had expired (after signing "
    "in again, say). Please reload the page and try again.",
    "Das hat nicht geklappt": "That did not work",
    "Diese Seite gibt es nicht, oder sie gehört zu einer Person, für die Sie nicht zuständig "
    "sind.": "This page does not exist, or it belongs to a person you are not responsible for.",
    "Ein unerwarteter Fehler ist aufgetreten. Er ist protokolliert; bitte versuchen Sie es noch "
    "einmal.": "An unexpected error occurred. It has been logged; please try again.",
    "Fall abgeschlossen.": "Case closed.",
    "Formular abgelaufen": "Form expired",
    "Gespeichert.": "Saved.",
    "Hauptmenü": "Main menu",
    "Keine Stellen gefunden.": "No openings found.",
    "Kontakt": "Contact",
    "Monat": "Month",
    "Neue Benachrichtigungen – neu laden": "New alerts – reload",
    "Nicht gefunden oder nicht Ihre Zuständigkeit": "Not found, or not yours",
    "Nicht möglich": "Not possible",
    "Offene Fälle": "Open cases",
    "Person angelegt.": "Person registered.",
    "Prognose": "forecast",
    "Schritt": "Step",
    "Stufe gespeichert.": "Stage saved.",
    "Tabelle": "Table",
    "Verworfen.": "Dismissed.",
    "Vorgeschlagen: ein Vermittlungsfall ist offen.": "Proposed: a placement case is open.",
    "Zum Inhalt": "Skip to content",
    # the inbox
    "Alle Benachrichtigungen": "All alerts",
    "Person": "Person",
    "Personenfilter aufheben": "Clear the person filter",
    "Filter aufheben": "Clear the filters",
    "eine Person": "a person",
    "Keine Benachrichtigungen für diesen Filter.": "No alerts for this filter.",
    "Das Archiv ist leer.": "The archive is empty.",
    "Keine Benachrichtigungen.": "No alerts.",
    "dringend": "urgent",
    "wichtig": "important",
    "Stellen für": "openings for",
    "Außerdem in dieser Übersicht": "Also in this digest",
    "nicht mehr verfügbar": "no longer available",
    "Neue Benachrichtigungen sind eingetroffen.": "New alerts have arrived.",
    "Seiten": "Pages",
}

# the notification kinds (the notifications service's ``Kind``), as the inbox names them
KINDS: Mapping[str, tuple[str, str]] = {
    "suggestions_ready": ("Neue Vorschläge", "New suggestions"),
    "course_completed": ("Kurs abgeschlossen", "Course completed"),
    "course_dropped": ("Kurs abgebrochen", "Course dropped"),
    "enrolled": ("Kursanmeldung", "Enrolment"),
    "attendance_at_risk": ("Anwesenheit gefährdet", "Attendance at risk"),
    "escalation": ("Eskalation", "Escalation"),
    "digest": ("Tagesübersicht", "Digest"),
}

STAGES: Mapping[str, tuple[str, str]] = {
    "proposed": ("Vorgeschlagen", "Proposed"),
    "interview": ("Vorstellungsgespräch", "Interview"),
    "internship_started": ("Praktikum/EQ begonnen", "Internship started"),
    "apprenticeship_started": ("Ausbildung begonnen", "Apprenticeship started"),
    "job_started": ("Arbeit begonnen", "Job started"),
    "employed_3_months": ("Nach 3 Monaten beschäftigt", "Employed after 3 months"),
    "employed_6_months": ("Nach 6 Monaten beschäftigt", "Employed after 6 months"),
}
CLOSING_REASONS: Mapping[str, tuple[str, str]] = {
    "declined_by_person": ("von der Person abgelehnt", "declined by the person"),
    "declined_by_employer": ("vom Arbeitgeber abgelehnt", "declined by the employer"),
    "not_suitable": ("nicht geeignet", "not suitable"),
    "dropped_out": ("abgebrochen", "dropped out"),
    "moved_away": ("weggezogen", "moved away"),
    "opening_closed": ("Stelle geschlossen", "opening closed"),
    "other_work_found": ("andere Arbeit gefunden", "found other work"),
    "completed": ("abgeschlossen", "completed"),
    "other": ("anderer Grund", "other"),
}
FUNNEL: Mapping[str, tuple[str, str]] = {
    "registered": ("Registriert", "Registered"),
    "in_course": ("Im Kurs", "In a course"),
    "b1_reached": ("B1 erreicht", "B1 reached"),
    "suggested": ("Vorschläge erhalten", "Suggested"),
    "in_case": ("In Vermittlung", "In a case"),
    "in_work_or_training": ("In Arbeit oder Ausbildung", "In work or training"),
    "employed_6_months": ("Nach 6 Monaten beschäftigt", "Employed after 6 months"),
}
OPENING_TYPES: Mapping[str, tuple[str, str]] = {
    "praktikum": ("Praktikum", "Internship"),
    "einstiegsqualifizierung": ("Einstiegsqualifizierung", "EQ"),
    "ausbildung": ("Ausbildung", "Apprenticeship"),
    "beschaeftigung": ("Beschäftigung", "Job"),
}
WORK_PERMISSIONS: Mapping[str, tuple[str, str]] = {
    "allowed": ("erlaubt", "allowed"),
    "needs_approval": ("Zustimmung beantragt", "needs approval"),
    "approved": ("zugestimmt", "approved"),
    "not_allowed": ("nicht erlaubt", "not allowed"),
}

# pydantic's error types, as a caseworker reads them
ERROR_TYPES: Mapping[str, tuple[str, str]] = {
    "missing": ("Bitte ausfüllen.", "Required."),
    "string_too_short": ("Bitte ausfüllen.", "Required."),
    "string_too_long": ("Zu lang.", "Too long."),
    "int_parsing": ("Bitte eine ganze Zahl.", "A whole number, please."),
    "int_type": ("Bitte eine ganze Zahl.", "A whole number, please."),
    "greater_than_equal": ("Zu klein.", "Too small."),
    "less_than_equal": ("Zu groß.", "Too large."),
    "date_from_datetime_parsing": ("Bitte ein Datum (TT.MM.JJJJ).", "A date, please."),
    "date_parsing": ("Bitte ein Datum.", "A date, please."),
    "enum": ("Bitte einen Wert aus der Liste.", "Choose a value from the list."),
    "value_error.email": ("Keine gültige E-Mail-Adresse.", "Not a valid email address."),
}


def translator(lang: str) -> Callable[[str], str]:
    if lang == "en":
        return lambda text: ENGLISH.get(text, text)
    return lambda text: text


def label(table: Mapping[str, tuple[str, str]], code: str | None, lang: str) -> str:
    if code is None:
        return "–"
    de, en = table.get(code, (code, code))
    return en if lang == "en" else de
