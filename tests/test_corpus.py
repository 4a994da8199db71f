import shutil

import pytest

from lmplug.corpus import BIBLE_SPLITS, normalize, parse_diatheke, read_lines, split_of_book, split_text_file
from lmplug.errors import LmplugError


@pytest.mark.parametrize(
    "text, mode, expected",
    [
        ("And God said, Let there be light: and there was light.", "lower", "and god said let there be light and there was light"),
        ("Moses\u2019 minister; the LORD\u2019s house", "lower", "moses minister the lord's house"),
        ("Y dijo Dios: Sea la luz: y fué la luz.", "lower", "y dijo dios sea la luz y fué la luz"),
        ("  Two   spaces,\tkept  Case. ", "clean", "Two spaces, kept Case."),
        ("chapter 12 verse 3", "lower", "chapter verse"),
    ],
)
def test_normalize(text, mode, expected):
    assert normalize(text, mode) == expected


def test_normalize_unknown_mode():
    with pytest.raises(LmplugError, match="expected 'lower' or 'clean'"):
        normalize("x", "upper")


def test_parse_diatheke_continuations_markup_and_glossary():
    lines = [
        "Genesis 1:1: In the beginning, Godcreated the heavens and the earth.",
        "I Samuel 2:1: Hannah prayed, and said:",
        "\u201cMy heart exults in Yahweh!",
        "",
        "My horn is exalted in Yahweh.\u201d",
        '<title canonical="true">A psalm.</title> <lg sID="x"/>Psalms 3:1: Yahweh, how my adversaries have increased!',
        "Revelation of John 22:21: The grace of the Lord Jesus Christ be with all the saints. Amen. "
        "The following words used in the World English Bible (WEB) are not very common",
        "(engWEB2015eb)",
    ]
    verses = parse_diatheke(lines)
    assert [v.key for v in verses] == ["Genesis 1:1", "I Samuel 2:1", "Psalms 3:1", "Revelation of John 22:21"]
    assert verses[0].text == "In the beginning, God created the heavens and the earth."
    assert verses[1].text == "Hannah prayed, and said: \u201cMy heart exults in Yahweh! My horn is exalted in Yahweh.\u201d"
    assert verses[2].text == "Yahweh, how my adversaries have increased!"
    assert verses[3].text.endswith("Amen.")


def test_split_by_book():
    assert split_of_book("Genesis") == "train"
    for split, books in BIBLE_SPLITS.items():
        for b in books:
            assert split_of_book(b) == split
    assert not set(BIBLE_SPLITS["dev"]) & set(BIBLE_SPLITS["test"])


def test_split_text_file(tmp_path):
    src = tmp_path / "c.txt"
    src.write_text("".join(f"Line number {chr(97 + i % 26)} here.\n" for i in range(200)) + "\n\n")
    counts = split_text_file(src, tmp_path / "out", every=50)
    assert counts == {"train": 192, "dev": 4, "test": 4}
    train = (tmp_path / "out" / "train.txt").read_text().splitlines()
    test = (tmp_path / "out" / "test.txt").read_text().splitlines()
    assert test[0] == "line number a here" and len(train) == 192


def test_read_lines_errors(tmp_path):
    with pytest.raises(LmplugError, match="not found"):
        read_lines(tmp_path / "missing.txt")
    (tmp_path / "e.txt").write_text("\n \n")
    with pytest.raises(LmplugError, match="empty corpus"):
        read_lines(tmp_path / "e.txt")
    (tmp_path / "b.txt").write_bytes(b"ok\n\xff\xfe bad\n")
    with pytest.raises(LmplugError, match="expected UTF-8"):
        read_lines(tmp_path / "b.txt")


@pytest.mark.skipif(shutil.which("diatheke") is None, reason="diatheke not installed (tools/setup.sh installs it)")
def test_real_bible_kjv_has_all_verses():
    from lmplug.corpus import read_bible

    verses = read_bible("kjv")
    assert len(verses) == 31102
    assert verses[0].key == "Genesis 1:1" and verses[-1].key.endswith("22:21")
