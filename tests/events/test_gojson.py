"""Go encoding/json output, byte for byte."""

from __future__ import annotations

from vigil.events.gojson import GoStruct, dumps


def test_sorted_keys_and_html_escapes() -> None:
    assert dumps({"b": "<a&b>", "a": 1}) == b'{"a":1,"b":"\\u003ca\\u0026b\\u003e"}'


def test_line_separators_and_control_characters() -> None:
    assert dumps({"s": "\u2028\u2029"}) == b'{"s":"\\u2028\\u2029"}'
    assert dumps({"s": "\x08\x0c\n\r\t\x01\x7f"}) == b'{"s":"\\u0008\\u000c\\n\\r\\t\\u0001\x7f"}'
    assert dumps({"s": "\\b\\f"}) == b'{"s":"\\\\b\\\\f"}'  # literal backslashes are not escapes


def test_non_ascii_is_raw() -> None:
    assert dumps({"s": "é"}) == '{"s":"é"}'.encode()


def test_numbers_as_go_float64() -> None:
    values = [1, 2.5, 1e21, 1e20, 1e-7, 0.000001, 1.0, -0.0, 2**60, 123456789.0]
    assert (
        dumps(values)
        == b"[1,2.5,1e+21,100000000000000000000,1e-7,0.000001,1,-0,1152921504606847000,123456789]"
    )


def test_gene_info_keeps_struct_order_inside_sorted_event() -> None:
    ev = {
        "Event": {
            "System": {},
            "GeneInfo": GoStruct(Signature=["A"], Criticality=3),
            "EventData": {"z": 1, "a": 2},
        }
    }
    assert (
        dumps(ev)
        == b'{"Event":{"EventData":{"a":2,"z":1},"GeneInfo":{"Signature":["A"],"Criticality":3},"System":{}}}'
    )
    assert dumps(GoStruct(b=1, a=GoStruct(y="<", x=2))) == b'{"b":1,"a":{"y":"\\u003c","x":2}}'


def test_lone_surrogate_becomes_replacement_character() -> None:
    assert dumps({"s": "\ud800"}) == '{"s":"\ufffd"}'.encode()


def test_infinity_cannot_be_marshalled_as_in_go() -> None:
    import math

    import pytest

    with pytest.raises(ValueError, match="unsupported value"):
        dumps({"a": math.inf})


def test_escapes_next_to_backslashes_and_other_e2_80_characters() -> None:
    """A control character after a literal backslash is still Go's \\u00XX; other characters whose
    UTF-8 starts like U+2028 (U+2027, U+20AC) stay raw."""
    assert dumps({"s": "\\\x08x\\\\\x0c"}) == b'{"s":"\\\\\\u0008x\\\\\\\\\\u000c"}'
    assert dumps({"s": "\u2027\u20ac\u2029"}) == '{"s":"\u2027\u20ac\\u2029"}'.encode()
    assert dumps({"s": "\\bf\\f"}) == b'{"s":"\\\\bf\\\\f"}'
