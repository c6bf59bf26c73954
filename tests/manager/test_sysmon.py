from __future__ import annotations

import pytest

from vigil.manager.errors import BadRequest
from vigil.manager.sysmon import config_from_json, config_from_xml, config_to_xml

XML = """<Sysmon schemaversion="4.90">
  <HashAlgorithms>SHA256,IMPHASH</HashAlgorithms>
  <CheckRevocation/>
  <EventFiltering>
    <RuleGroup name="" groupRelation="or">
      <ProcessCreate onmatch="exclude"><Image condition="is">C:\\Windows\\a.exe</Image></ProcessCreate>
    </RuleGroup>
    <NetworkConnect onmatch="include"><DestinationPort>443</DestinationPort><DestinationPort>80</DestinationPort></NetworkConnect>
  </EventFiltering>
</Sysmon>"""


def test_xml_to_whids_model_and_back() -> None:
    config = config_from_xml(XML, "windows")
    assert config["schemaversion"] == "4.90" and config["HashAlgorithms"] == "SHA256,IMPHASH"
    assert config["EventFiltering"]["NetworkConnect"]["DestinationPort"] == [
        {"condition": "is", "value": "443"},
        {"condition": "is", "value": "80"},
    ]
    again = config_from_xml(config_to_xml(config), "windows")
    assert again == config, "regenerated XML gives the same model and hash"
    assert config_from_json({k: v for k, v in config.items() if k != "XmlSha256"}, "windows") == config


@pytest.mark.parametrize(
    ("xml", "os_name", "field"),
    [
        ('<Sysmon schemaversion="4"/>', "windows", "schemaversion"),
        ('<Sysmon schemaversion="4.1"/>', "plan9", "os"),
        ("<Other/>", "windows", "body"),
        ("<Sysmon", "windows", "body"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><Sysmon schemaversion="4.1"/>', "windows", "body"),
        (
            '<Sysmon schemaversion="4.1"><HashAlgorithms>crc32</HashAlgorithms></Sysmon>',
            "windows",
            "HashAlgorithms",
        ),
        (
            '<Sysmon schemaversion="4.1"><EventFiltering><ProcessCreate onmatch="maybe"/></EventFiltering></Sysmon>',
            "windows",
            "ProcessCreate",
        ),
        (
            '<Sysmon schemaversion="4.1"><EventFiltering><ProcessCreate onmatch="include"><Image condition="like">x'
            "</Image></ProcessCreate></EventFiltering></Sysmon>",
            "windows",
            "Image",
        ),
    ],
)
def test_invalid_configs_name_what_is_wrong(xml: str, os_name: str, field: str) -> None:
    with pytest.raises(BadRequest) as err:
        config_from_xml(xml, os_name)
    assert err.value.field == field
