"""inet and cidr values as the text PostgreSQL prints them, for columns held as str."""

from __future__ import annotations

import ipaddress


def _ipv6_text(address: ipaddress.IPv6Address) -> str:
    """An IPv6 address as PostgreSQL prints it (its inet_net_ntop, after BIND's).

    The longest run of two or more zero words (the first on a tie) becomes
    ``::``; an address in ``::/96`` or ``::ffff:0:0/96`` whose zero run is the
    first 6 words (or 5 then ffff) ends in dotted IPv4 form.
    """
    words = [(int(address) >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    best_base, best_len, base, length = -1, 0, -1, 0
    for i, word in enumerate(words):
        if word == 0:
            base, length = (i, 1) if base == -1 else (base, length + 1)
            if length > best_len:
                best_base, best_len = base, length
        else:
            base, length = -1, 0
    if best_len < 2:
        best_base = -1
    if best_base == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
        tail = ".".join(str(b) for b in address.packed[12:])
        return f"::ffff:{tail}" if best_len == 5 else f"::{tail}"
    parts: list[str] = []
    i = 0
    while i < 8:
        if i == best_base:
            parts.append("")
            i += best_len
            if i == 8:
                parts.append("")
            if best_base == 0:
                parts.insert(0, "")
            continue
        parts.append(f"{words[i]:x}")
        i += 1
    return ":".join(parts)


def _address_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return str(address) if address.version == 4 else _ipv6_text(address)


def address_text(value: str, network: bool) -> str | None:
    """``value`` as PostgreSQL prints an inet (``network``: a cidr), or None.

    None when Python's ipaddress cannot read it (PostgreSQL's ``10.1/16``
    shorthand, an IPv6 zone index) or, for a cidr, when host bits are set.
    """
    if "%" in value or not value.isascii():
        return None  # an IPv6 zone index; PostgreSQL reads no zone
    try:
        if network:
            net = ipaddress.ip_network(value.strip(), strict=True)
            return f"{_address_text(net.network_address)}/{net.prefixlen}"
        iface = ipaddress.ip_interface(value.strip())
    except ValueError:
        return None
    text = _address_text(iface.ip)
    full = 32 if iface.version == 4 else 128
    return text if iface.network.prefixlen == full else f"{text}/{iface.network.prefixlen}"


__all__ = ["address_text"]
