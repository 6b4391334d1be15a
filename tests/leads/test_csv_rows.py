"""Reading an uploaded CSV: the encodings and delimiters spreadsheets write, and row numbers a user recognizes."""

# ruff: noqa: RUF001, RUF003  (Cyrillic text is the point of these tests)

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.leads.csv_rows import csv_line, decode, read_rows, row_to_raw, sniff_delimiter
from services.leads.intake import CaptureSettings, validate_lead
from services.leads.mapping import MappingError

RUSSIAN_EXCEL = (
    "ФИО;Телефон;E-mail;Компания;Должность;Комментарий;Бюджет\r\n"
    'Анна Петрова;8 (916) 123-45-67;Anna@Example.ru;"ООО ""Ромашка""; филиал";Директор;'
    '"Перезвонить\r\nпосле 18:00";1 500,50\r\n'
    ";;;;;;\r\n"
    "Борис;+7 916 000-00-01;;;;;\r\n"
).encode("cp1251")


def test_russian_excel_export_in_cp1251_with_semicolons():
    text, encoding = decode(RUSSIAN_EXCEL)
    assert encoding == "cp1251"
    delimiter = sniff_delimiter(text)
    assert delimiter == ";"
    header, rows = read_rows(text, delimiter)
    assert header == ["ФИО", "Телефон", "E-mail", "Компания", "Должность", "Комментарий", "Бюджет"]
    rows = list(rows)
    assert [number for number, _ in rows] == [2, 4]
    raws = [row_to_raw(header, cells, {"custom.budget": "бюджет"}) for _, cells in rows]
    assert raws[0] == {
        "name": "Анна Петрова",
        "phone": "8 (916) 123-45-67",
        "email": "Anna@Example.ru",
        "company": 'ООО "Ромашка"; филиал',
        "position": "Директор",
        "notes": "Перезвонить\r\nпосле 18:00",
        "custom": {"budget": "1 500,50"},
    }
    assert raws[1] == {"name": "Борис", "phone": "+7 916 000-00-01"}
    settings = CaptureSettings(
        default_region="RU", custom_fields=[{"key": "budget", "label": "Бюджет", "type": "number"}]
    )
    lead = validate_lead(raws[0], settings)
    assert (lead.phone, lead.email, lead.custom) == ("+79161234567", "anna@example.ru", {"budget": "1500.5"})


def test_utf8_with_bom_and_commas():
    content = '\ufeffName,Email,Phone,Company\r\n"Lee, Ann",ann@example.com,+1 202 555 0143,"Acme, Inc."\r\n'
    text, encoding = decode(content.encode("utf-8"))
    assert encoding == "utf-8"
    assert not text.startswith("\ufeff")
    assert sniff_delimiter(text) == ","
    header, rows = read_rows(text, ",")
    assert header == ["Name", "Email", "Phone", "Company"]
    [(number, cells)] = list(rows)
    assert number == 2
    assert row_to_raw(header, cells, {}) == {
        "name": "Lee, Ann",
        "email": "ann@example.com",
        "phone": "+1 202 555 0143",
        "company": "Acme, Inc.",
    }


def test_bom_left_in_the_text_is_not_part_of_the_first_column():
    header, _ = read_rows("\ufeffName;Email\nAnn;a@b.c\n", ";")
    assert header == ["Name", "Email"]


@pytest.mark.parametrize(
    ("content", "encoding", "expected"),
    [
        ("Имя".encode(), "auto", ("Имя", "utf-8")),
        ("Имя".encode("utf-8-sig"), "auto", ("Имя", "utf-8")),
        ("Имя".encode("cp1251"), "auto", ("Имя", "cp1251")),
        ("Имя\tТелефон\r\n".encode("utf-16"), "auto", ("Имя\tТелефон\r\n", "utf-16")),
        ("Имя".encode("utf-8-sig"), "utf-8", ("Имя", "utf-8")),
        ("Имя".encode(), "UTF8", ("Имя", "utf-8")),
        ("Имя".encode("cp1251"), "cp1251", ("Имя", "cp1251")),
        ("Имя".encode("cp1251"), "windows-1251", ("Имя", "cp1251")),
        (b"", "auto", ("", "utf-8")),
        ("юяжж;яю\n".encode("cp1251"), "auto", ("юяжж;яю\n", "cp1251")),
    ],
)
def test_decode(content, encoding, expected):
    assert decode(content, encoding) == expected


def test_decode_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="not supported"):
        decode(b"x", "latin-1")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        decode("Имя".encode("cp1251"), "utf-8")
    with pytest.raises(ValueError, match="Windows-1251"):
        decode(b"\x98", "auto")  # the one byte cp1251 leaves undefined


@given(st.text())
def test_auto_reads_any_utf8_text_back(text):
    assert decode(text.encode("utf-8"), "auto") == (text.removeprefix("\ufeff"), "utf-8")


# А..я are bytes C0..FF in cp1251, never a valid UTF-8 sequence, so "auto" cannot mistake them. (Ё, ё and № are
# bytes A8, B8, B9: "Рё" in cp1251 is the UTF-8 for "и", an ambiguity no byte-level guess can settle.)
@given(st.text(alphabet='АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдежзийклмнопрстуфхцчшщъыьэюя ;,\n"1a', min_size=1))
def test_auto_reads_russian_cp1251_text_back(text):
    expected = "utf-8" if text.isascii() else "cp1251"
    assert decode(text.encode("cp1251"), "auto") == (text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b,c\n1,2,3\n", ","),
        ("a;b;c\n1;2;3\n", ";"),
        ("a\tb\tc\n1\t2\t3\n", "\t"),
        ("name;company\nAnn;Acme, Inc\nBob;Foo, Bar, Baz\n", ";"),
        ('name,company\nAnn,"Acme; Inc"\n', ","),
        ("name\tnote\nAnn\tx, y; z\n", "\t"),
        ("Имя;Телефон;Адрес, город\nАнна;1;Москва, центр\n", ";"),
        ('a;"b\nc";d\n1;2;3\n', ";"),
        ("name\nAnn\n", ","),
        ("", ","),
        ("\n\n", ","),
    ],
)
def test_sniff_delimiter(text, expected):
    assert sniff_delimiter(text) == expected


def test_rows_are_numbered_as_a_spreadsheet_shows_them():
    text = 'h1,h2\n\na,"multi\nline\ncell"\n,\n  ,  \nb,2\n'
    header, rows = read_rows(text, ",")
    assert header == ["h1", "h2"]
    assert list(rows) == [(3, ["a", "multi\nline\ncell"]), (6, ["b", "2"])]


def test_leading_blank_lines_come_before_the_header():
    header, rows = read_rows("\n\n name , email \nAnn,a@b.c\n", ",")
    assert header == ["name", "email"]
    assert list(rows) == [(4, ["Ann", "a@b.c"])]


def test_empty_file_has_no_header_and_no_rows():
    header, rows = read_rows("", ",")
    assert header == []
    assert list(rows) == []


def test_read_rows_refuses_other_delimiters_and_names_an_unreadable_row():
    with pytest.raises(ValueError, match="delimiter"):
        read_rows("a|b", "|")
    _, rows = read_rows("a,b\n1,2\n3," + "x" * (csv.field_size_limit() + 1) + "\n", ",")
    assert next(rows) == (2, ["1", "2"])
    with pytest.raises(ValueError, match="Row 3"):
        next(rows)


def test_mapping_names_columns_case_insensitively_and_combines_lists():
    header = ["First", "Last", "Mail", "Source", "Topics"]
    row = ["Ann", "Lee", "a@b.c", "fair", "crm, sms"]
    mapping = {"name": ["first", "LAST"], "email": "mail", "utm.source": "Source", "tags": "topics"}
    assert row_to_raw(header, row, mapping) == {
        "name": "Ann Lee",
        "email": "a@b.c",
        "utm": {"source": "fair"},
        "tags": ["crm", "sms"],
    }


def test_mapped_column_names_are_not_paths():
    assert row_to_raw(["contact.email"], ["a@b.c"], {"email": "Contact.Email"}) == {"email": "a@b.c"}


def test_trailing_empty_cells_are_ignored():
    assert row_to_raw(["Name", "Email"], ["Ann", "a@b.c", "", " "], {}) == {"name": "Ann", "email": "a@b.c"}


@pytest.mark.parametrize(
    ("row", "says"),
    [
        (["Ann", "Acme", " Inc", "a@b.c"], "This row has 4 cells but the header has 3 columns."),
        (["Ann", "Acme"], "This row has 2 cells but the header has 3 columns."),
        (["Ann", "Acme", "a@b.c", "x", ""], "This row has 4 cells but the header has 3 columns."),
    ],
)
def test_a_row_that_does_not_line_up_with_the_header_is_refused(row, says):
    with pytest.raises(MappingError) as info:
        row_to_raw(["Name", "Company", "Email"], row, {})
    [error] = info.value.errors
    assert (error["field"], error["code"]) == ("row", "cell_count")
    assert error["message"].startswith(says)


def test_a_header_with_trailing_delimiters_does_not_make_rows_short():
    assert row_to_raw(["Name", "Email", "", ""], ["Ann", "a@b.c"], {}) == {"name": "Ann", "email": "a@b.c"}
    with pytest.raises(MappingError, match="has 1 cells but the header has 2 columns"):
        row_to_raw(["Name", "Email", "", ""], ["Ann"], {})


def test_duplicate_columns_give_the_first_non_empty_value():
    assert row_to_raw(["Phone", "phone"], ["", "+1 202 555 0143"], {}) == {"phone": "+1 202 555 0143"}


def test_unmapped_unknown_columns_are_left_out():
    assert row_to_raw(["Name", "", "Shoe size"], ["Ann", "x", "42"], {}) == {"name": "Ann"}


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_line_writes_a_row_back_out(delimiter):
    cells = ["plain", f"with{delimiter}delimiter", 'with "quotes"', "two\nlines", ""]
    line = csv_line(cells, delimiter)
    assert not line.endswith("\n")
    assert next(csv.reader(io.StringIO(line, newline=""), delimiter=delimiter)) == cells


cells = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)


@given(
    st.lists(st.lists(cells, min_size=1, max_size=5), min_size=1, max_size=8),
    st.sampled_from([",", ";", "\t"]),
)
def test_any_rows_written_by_csv_writer_are_read_back(rows, delimiter):
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    header, read = read_rows(out.getvalue(), delimiter)
    non_empty = [(number, row) for number, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if not non_empty:
        assert header == []
        assert list(read) == []
        return
    (_, header_row), *data = non_empty
    assert header == [cell.replace("\ufeff", "").strip() for cell in header_row]
    assert list(read) == data
    # and each row, written back by csv_line, reads the same again
    for _, row in data:
        assert next(csv.reader(io.StringIO(csv_line(row, delimiter), newline=""), delimiter=delimiter)) == row


plain_cells = st.text(alphabet=st.characters(exclude_characters=',;\t"\r\n', exclude_categories=("Cs",)), max_size=8)


@given(
    st.integers(min_value=2, max_value=6).flatmap(
        lambda width: st.lists(st.lists(plain_cells, min_size=width, max_size=width), min_size=1, max_size=6)
    ),
    st.sampled_from([",", ";", "\t"]),
)
def test_sniffing_finds_the_delimiter_of_a_well_formed_file(rows, delimiter):
    header = [f"col{i}" for i in range(len(rows[0]))]
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows([header, *rows])
    assert sniff_delimiter(out.getvalue()) == delimiter


@given(st.text(max_size=200))
def test_sniffing_any_text_gives_one_of_the_three(text):
    assert sniff_delimiter(text) in (",", ";", "\t")


@given(
    st.lists(cells, min_size=1, max_size=6),
    st.lists(cells, min_size=0, max_size=8),
    st.dictionaries(st.sampled_from(["name", "email", "tags", "custom.x", "utm.source"]), cells, max_size=3),
)
def test_row_to_raw_raises_only_mapping_error(header, row, mapping):
    try:
        row_to_raw(header, row, mapping)
    except MappingError as exc:
        codes = {e["code"] for e in exc.errors}
        assert codes <= {"cell_count", "invalid_path"}
