"""pneumo.render.palette: one home for colours, the app's theme included."""

import tomllib
from pathlib import Path

import pytest

from pneumo.render import palette

ROOT = Path(__file__).resolve().parent.parent


def test_the_streamlit_theme_is_the_palettes():
    theme = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["theme"]
    colours = {key: value for key, value in theme.items() if key.endswith("Color")}
    assert colours == palette.THEME


def test_every_colour_is_a_hex_string_that_rgb_reads():
    colours = [value for name, value in vars(palette).items() if name.endswith("_COLOUR") or name == "INK"]
    colours += [*palette.CLASS_COLOURS.values(), *palette.METRIC_COLOURS.values(), *palette.MAP_COLOURS.values()]
    for colour in colours:
        assert len(colour) == 7 and colour.startswith("#"), colour
        assert "#" + "".join(f"{c:02x}" for c in palette.rgb(colour)) == colour


@pytest.mark.parametrize(("colour", "expected"), [("#a15c00", (161, 92, 0)), ("#000000", (0, 0, 0)),
                                                  ("#F0F4F7", (240, 244, 247))])
def test_rgb(colour, expected):
    assert palette.rgb(colour) == expected


@pytest.mark.parametrize("bad", ["a15c00x", "#abc", "#gggggg"])
def test_rgb_refuses_what_is_not_rrggbb(bad):
    with pytest.raises(ValueError):
        palette.rgb(bad)


def test_class_review_and_neutral_colours_are_distinct():
    assert len({*palette.CLASS_COLOURS.values(), palette.REVIEW_COLOUR, palette.NEUTRAL_COLOUR}) == 4
