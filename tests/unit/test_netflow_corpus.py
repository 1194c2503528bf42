"""NetFlow v5/v9 and IPFIX decoding against the real captures in tests/data.

Every netflow/ and ipfix/ file belongs to one group, decoded in the order the source
projects' tests use (templates before data) through one FlowDecoder. Expected record counts were measured
on the captures with tshark and an independent parser, or are what the source projects assert
(akvorado, logstash-codec-netflow, pmacct, pktvisor).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from topfib.collector.common.pcap import is_capture, udp_payloads
from topfib.collector.netflow.decoder import FlowDecodeError, FlowDecoder, FlowRecord

RAW_EXPORTER = "192.0.2.1"  # raw payload files carry no source address


def payloads(path: Path) -> list[tuple[str, bytes]]:
    data = path.read_bytes()
    if is_capture(data):
        return list(udp_payloads(data))
    return [(RAW_EXPORTER, data)]


@dataclass
class Decoded:
    decoder: FlowDecoder
    records: list[FlowRecord]
    errors: list[FlowDecodeError]


def decode_group(corpus: Path, files: tuple[str, ...], decoder: FlowDecoder | None = None) -> Decoded:
    decoder = decoder if decoder is not None else FlowDecoder()
    records: list[FlowRecord] = []
    errors: list[FlowDecodeError] = []
    for name in files:
        for exporter, payload in payloads(corpus / name):
            try:
                records.extend(decoder.decode(payload, exporter))
            except FlowDecodeError as error:
                errors.append(error)
    return Decoded(decoder, records, errors)


NF = "netflow/akvorado__"
IX = "ipfix/akvorado__"
LN = "netflow/logstash-codec-netflow__"
LI = "ipfix/logstash-codec-netflow__"
PM = "ipfix/pmacct__"

# group -> (files in decode order, flow records, options records)
GROUPS: dict[str, tuple[tuple[str, ...], int, int]] = {
    "akvorado-options": (
        (f"{NF}options-template.pcap", f"{NF}options-data.pcap", f"{NF}template.pcap", f"{NF}data.pcap"),
        4,
        4,
    ),
    # 10 records tshark decodes + 11 in a data set that precedes its template in the datagram
    "akvorado-data+templates": ((f"{NF}data+templates.pcap",), 21, 1),
    "akvorado-samplingrate": ((f"{NF}samplingrate-template.pcap", f"{NF}samplingrate-data.pcap"), 6, 0),
    "akvorado-multiplesamplingrates": (
        (
            f"{NF}multiplesamplingrates-options-template.pcap",
            f"{NF}multiplesamplingrates-options-data.pcap",
            f"{NF}multiplesamplingrates-template.pcap",
            f"{NF}multiplesamplingrates-data.pcap",
        ),
        12,
        2,
    ),
    "akvorado-icmp": ((f"{NF}icmp-template.pcap", f"{NF}icmp-data.pcap"), 4, 0),
    "akvorado-nat": ((f"{NF}nat.pcap",), 9, 0),
    "akvorado-nfv5": ((f"{NF}nfv5.pcap",), 29, 0),
    "akvorado-datalink": ((f"{IX}datalink-template.pcap", f"{IX}datalink-data.pcap"), 1, 0),
    "akvorado-eompls": (
        (
            f"{IX}ethernet-over-mpls-with-control-word-template.pcap",
            f"{IX}ethernet-over-mpls-with-control-word-data.pcap",
        ),
        10,
        0,
    ),
    "akvorado-srv6": ((f"{IX}ipfix-srv6-template.pcap", f"{IX}ipfix-srv6-data.pcap"), 1, 0),
    # RFC 5103 biflows: 4 records, 2 of them carry reverse traffic (akvorado: 6 flows)
    "akvorado-ipfixprobe": ((f"{IX}ipfixprobe-templates.pcap", f"{IX}ipfixprobe-data.pcap"), 6, 0),
    "akvorado-juniper-cpid": ((f"{IX}juniper-cpid-template.pcap", f"{IX}juniper-cpid-data.pcap"), 1, 0),
    "akvorado-mpls": ((f"{IX}mpls.pcap",), 2, 1),
    "akvorado-physicalinterfaces": ((f"{IX}physicalinterfaces.pcap",), 8, 1),
    "goflow2-v9": (
        (
            "netflow/goflow2__TestDecodeNetFlowV9__template.bin",
            "netflow/goflow2__TestDecodeNetFlowV9__data.bin",
        ),
        21,
        0,
    ),
    # logstash-codec-netflow counts options records as events too: N = flows + options
    "logstash-v5": ((f"{LN}netflow5.dat",), 2, 0),
    "logstash-v9-valid01": ((f"{LN}netflow9_test_valid01.dat",), 7, 0),
    "logstash-v9-macaddr": (
        (f"{LN}netflow9_test_macaddr_tpl.dat", f"{LN}netflow9_test_macaddr_data.dat"),
        29,
        1,
    ),
    "logstash-v9-aci": (
        (f"{LN}netflow9_test_cisco_aci_tpl256-258.dat", f"{LN}netflow9_test_cisco_aci_data256.dat"),
        3,
        0,
    ),
    "logstash-v9-asa1": (
        (f"{LN}netflow9_test_cisco_asa_1_tpl.dat", f"{LN}netflow9_test_cisco_asa_1_data.dat"),
        14,
        0,
    ),
    "logstash-v9-multiple-exporters": (
        (
            f"{LN}netflow9_test_nprobe_tpl.dat",
            f"{LN}netflow9_test_softflowd_tpl_data.dat",
            f"{LN}netflow9_test_nprobe_data.dat",
        ),
        8,
        1,
    ),
    "logstash-v9-invalid01": ((f"{LN}netflow9_test_invalid01.dat",), 2, 1),
    "logstash-ipfix": ((f"{LI}ipfix.dat",), 6, 1),
    "logstash-v9-asa2": (
        (
            f"{LN}netflow9_test_cisco_asa_2_tpl_26x.dat",
            f"{LN}netflow9_test_cisco_asa_2_tpl_27x.dat",
            f"{LN}netflow9_test_cisco_asa_2_data.dat",
        ),
        19,
        0,
    ),
    "logstash-ipfix-openbsd": (
        (f"{LI}ipfix_test_openbsd_pflow_tpl.dat", f"{LI}ipfix_test_openbsd_pflow_data.dat"),
        26,
        0,
    ),
    "logstash-v9-iptnetflow": (
        (f"{LN}netflow9_test_iptnetflow_reduced_size_encoding_tpldata260.dat",),
        12,
        0,
    ),
    "logstash-v9-ie150": ((f"{LN}netflow9_test_unknown_tpl266_292_data.dat",), 2, 0),
    "logstash-ipfix-ixia256": ((f"{LI}ipfix_test_ixia_tpldata256.dat",), 1, 0),
    "logstash-ipfix-ixia271": ((f"{LI}ipfix_test_ixia_tpldata271.dat",), 2, 0),
    "logstash-ipfix-procera": (
        (f"{LI}ipfix_test_procera_tpl52935.dat", f"{LI}ipfix_test_procera_data52935.dat"),
        8,
        0,
    ),
    "logstash-ipfix-barracuda-uniflow": (
        (
            f"{LI}ipfix_test_barracuda_extended_uniflow_tpl256.dat",
            f"{LI}ipfix_test_barracuda_extended_uniflow_data256.dat",
        ),
        2,
        0,
    ),
    "logstash-v9-nprobe-dpi": ((f"{LN}netflow9_test_nprobe_dpi.dat",), 1, 0),
    "logstash-v9-streamcore": (
        (f"{LN}netflow9_test_streamcore_tpl_data256.dat", f"{LN}netflow9_test_streamcore_tpl_data260.dat"),
        4,
        0,
    ),
    "logstash-ipfix-netscaler": (
        (f"{LI}ipfix_test_netscaler_tpl.dat", f"{LI}ipfix_test_netscaler_data.dat"),
        3,
        0,
    ),
    "logstash-v9-0length": ((f"{LN}netflow9_test_0length_fields_tpl_data.dat",), 10, 0),
    "logstash-v9-asr9k-opt256": (
        (f"{LN}netflow9_test_cisco_asr9k_opttpl256.dat", f"{LN}netflow9_test_cisco_asr9k_data256.dat"),
        0,
        19,
    ),
    "logstash-v9-asr9k-opt257-334": (
        (f"{LN}netflow9_test_cisco_asr9k_opttpl257.dat", f"{LN}netflow9_test_cisco_asr9k_opttpl334.dat"),
        0,
        0,
    ),
    "logstash-v9-layer2segmentid": (
        (
            f"{LN}netflow9_test_field_layer2segmentid_tpl.dat",
            f"{LN}netflow9_test_field_layer2segmentid_data.dat",
        ),
        1,
        0,
    ),
    "logstash-v9-asr9k-260": (
        (f"{LN}netflow9_test_cisco_asr9k_tpl260.dat", f"{LN}netflow9_test_cisco_asr9k_data260.dat"),
        21,
        0,
    ),
    "logstash-v9-asr9k-266": ((f"{LN}netflow9_test_cisco_asr9k_tpl266.dat",), 0, 0),
    "logstash-v9-nbar-opt": ((f"{LN}netflow9_test_cisco_nbar_opttpl260.dat",), 0, 15),
    "logstash-v9-nbar-262": (
        (f"{LN}netflow9_test_cisco_nbar_tpl262.dat", f"{LN}netflow9_test_cisco_nbar_data262.dat"),
        5,
        0,
    ),
    "logstash-v9-wlc": (
        (f"{LN}netflow9_test_cisco_wlc_tpl.dat", f"{LN}netflow9_test_cisco_wlc_data261.dat"),
        19,
        0,
    ),
    "logstash-v9-wlc8510": ((f"{LN}netflow9_test_cisco_wlc_8510_tpl_262.dat",), 0, 0),
    "logstash-v9-1941": ((f"{LN}netflow9_test_cisco_1941K9.dat",), 29, 0),
    "logstash-v9-asr1001x": ((f"{LN}netflow9_cisco_asr1001x_tpl259.dat",), 25, 0),
    "logstash-ipfix-viptela": (
        (f"{LI}ipfix_test_viptela_tpl257.dat", f"{LI}ipfix_test_viptela_data257.dat"),
        1,
        0,
    ),
    "logstash-ipfix-barracuda": (
        (f"{LI}ipfix_test_barracuda_tpl.dat", f"{LI}ipfix_test_barracuda_data256.dat"),
        8,
        0,
    ),
    "ndpi-fritz": (("ipfix/ndpi__netflow-fritz.pcap",), 0, 0),
    # data FlowSets only: the templates were never captured
    "ndpi-netflowv9": (("netflow/ndpi__netflowv9.pcap",), 0, 0),
    "pktvisor-nf9": (("netflow/pktvisor__nf9.pcap",), 24, 1),
    "pktvisor-ipfix": (("ipfix/pktvisor__ipfix.pcap",), 23, 1),
    "pmacct-100": ((f"{PM}100-IPFIXv10-CISCO__traffic-00.pcap",), 12, 0),
    "pmacct-101": (("netflow/pmacct__101-NFv9-CISCO-cust_primitives__traffic-00.pcap",), 51, 0),
    "pmacct-102": (("netflow/pmacct__102-NFv9-CISCO-f2rd-pretag-sampling-reload__traffic-00.pcap",), 35, 0),
    "pmacct-103": ((f"{PM}103-IPFIXv10-CISCO-pretag-JSON_encoding__traffic-00.pcap",), 12, 0),
    "pmacct-104": ((f"{PM}104-IPFIXv10-IPv6-CISCO-sampling_option__traffic-00.pcap",), 3, 1),
    "pmacct-106": ((f"{PM}106-IPFIXv10-HUAWEI-vrf_name__traffic-00.pcap",), 3, 1),
    "pmacct-111": (
        (
            f"{PM}111-IPFIXv10-NFv9-IPv6-IPv4-mix_sources__traffic-00.pcap",
            f"{PM}111-IPFIXv10-NFv9-IPv6-IPv4-mix_sources__traffic-01.pcap",
        ),
        24,
        0,
    ),
    "pmacct-112": ((f"{PM}112-IPFIXv10-CISCO-options-map-reassignment__traffic-00.pcap",), 9, 76),
    "pmacct-400": (
        (
            f"{PM}400-IPFIXv10-BMP-CISCO-SRv6-multiple-sources__traffic-00.pcap",
            f"{PM}400-IPFIXv10-BMP-CISCO-SRv6-multiple-sources__traffic-01.pcap",
        ),
        657 + 109,
        338 + 338,
    ),
    "pmacct-401": (
        (
            f"{PM}401-IPFIXv10-BMP-IPv6-CISCO-MPLS-multiple-sources__traffic-00.pcap",
            f"{PM}401-IPFIXv10-BMP-IPv6-CISCO-MPLS-multiple-sources__traffic-01.pcap",
        ),
        748 + 716,
        351 + 351,
    ),
    "pmacct-403": ((f"{PM}403-IPFIXv10-BMP-IPv6-CISCO-locrib-peerdown-vrf__traffic-00.pcap",), 480, 324),
    "pmacct-500": ((f"{PM}500-IPFIXv10-BGP-CISCO-SRv6__traffic-00.pcap",), 43, 10),
    "pmacct-501": ((f"{PM}501-IPFIXv10-BGP-IPv6-CISCO-MPLS__traffic-00.pcap",), 74, 39),
    "pmacct-502": ((f"{PM}502-IPFIXv10-BGP-IPv6-CISCO-SRv6-lcomms__traffic-00.pcap",), 75, 39),
}

# intentionally broken files (logstash "invalid" contexts): must fail with the typed error only
INVALID = {
    f"{LN}netflow5_test_invalid01.dat": "record-count",
    f"{LN}netflow5_test_invalid02.dat": "record-count",
}


def test_every_corpus_file_is_in_a_group(corpus: Path) -> None:
    grouped = {name for files, _, _ in GROUPS.values() for name in files} | set(INVALID)
    on_disk = {f"{d}/{p.name}" for d in ("netflow", "ipfix") for p in (corpus / d).iterdir()}
    assert on_disk - grouped == set()
    assert grouped - on_disk == set()


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_group_decodes_in_order(corpus: Path, group: str) -> None:
    files, flows, options = GROUPS[group]
    decoded = decode_group(corpus, files)
    assert decoded.errors == []
    assert decoded.decoder.counters.malformed == {}
    assert len(decoded.records) == flows
    assert decoded.decoder.counters.options_records == options
    assert decoded.decoder.counters.records == flows


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_files_raise_the_typed_error(corpus: Path, name: str) -> None:
    decoded = decode_group(corpus, (name,))
    assert [error.reason for error in decoded.errors] == [INVALID[name]]
    assert decoded.decoder.counters.malformed == {(INVALID[name], RAW_EXPORTER): 1}


def test_data_before_template_is_held_then_decoded(corpus: Path) -> None:
    # logstash "Netscaler … missing templates": the data alone gives 0 events, then 3 with the template
    decoder = FlowDecoder()
    alone = decode_group(corpus, (f"{LI}ipfix_test_netscaler_data.dat",), decoder)
    assert alone.records == []
    assert decoder.counters.pending_sets_held == 4
    late = decode_group(corpus, (f"{LI}ipfix_test_netscaler_tpl.dat",), decoder)
    assert len(late.records) == 3
    assert decoder.counters.pending_sets_decoded == 3  # the 4th set's template is not in the file
    in_order = decode_group(
        corpus, (f"{LI}ipfix_test_netscaler_tpl.dat", f"{LI}ipfix_test_netscaler_data.dat")
    )
    # released in template order rather than arrival order; same records
    assert sorted(late.records, key=repr) == sorted(in_order.records, key=repr)


def test_data_without_templates_is_dropped_after_the_hold(corpus: Path) -> None:
    decoder = FlowDecoder(pending_max_age_datagrams=4)
    decode_group(corpus, ("netflow/ndpi__netflowv9.pcap",), decoder)
    assert decoder.counters.pending_sets_held == 23
    assert decoder.counters.pending_template_drops > 0
    assert decoder.counters.records == 0
