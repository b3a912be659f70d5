"""The egress proxy's squid.conf: what squid checks per request, in which order, and what it logs.

Per request squid checks, in this order: the policy (by source IP: ``deny:``,
``allow:``, else refused; IP literals only when an allowed network covers
them); the port (80 or 443; CONNECT to 443 only); then the addresses the name
resolved to, refused in the blocked ranges unless opened (private, metadata,
...; loopback always), so a name a policy refuses is never resolved. For
CONNECT it then peeks at the TLS ClientHello and splices only when the SNI is
allowed too. Refusals go to ``access.log`` with the session and the rule, in
the format ``egress_log`` parses.

Two squid behaviours shape the configuration: a CONNECT denied in
``http_access`` on an ``ssl-bump`` port is answered with 200 and the error is
served inside TLS under our throwaway certificate, so CONNECT refusals are
decided in ``http_access`` as an annotation and sent as a plain 403 from
``miss_access``; and format codes reach helpers unescaped unless marked with
``#``, so a newline in an SNI would split a helper request in two and shift
every later answer by one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from string import Template

PROXY_USER = "proxy"  # Debian's squid user; squid drops to it right after start
PYTHON = "/usr/bin/python3"  # the helper runs on the host's python, with -I: no site, no environment

# Never reached through the proxy, whatever egress_allow says: IPv6 has no egress lists (sandboxes have no IPv6),
# so the special ranges are refused here and the firewall refuses the rest for the proxy user. (Not ::ffff:0:0/96:
# squid keeps IPv4 addresses in that form, so it would mean every IPv4 address; mapped answers meet the IPv4 list.)
BLOCKED_IPV6 = (
    "::/127",  # unspecified, loopback
    "64:ff9b::/96",  # NAT64: any IPv4 address, private ones too, through a translator
    "fc00::/7",  # unique local (AWS's IPv6 metadata address, fd00:ec2::254, is one)
    "fe80::/10",  # link-local
    "ff00::/8",  # multicast
)

SQUID_CONF = Template("""\
# Written by sandkasten (egress_squid_conf.py), overwritten at each server start: change the server's settings instead.
http_port ${listen}:${port} ssl-bump cert=${dir}/tls.pem generate-host-certificates=off
pid_filename ${run}/squid.pid
cache_log ${run}/cache.log
coredump_dir ${run}
cache_effective_user ${user}
cache deny all
cache_mem 0 MB
pinger_enable off
hosts_file none
netdb_filename none
forwarded_for delete
httpd_suppress_version_string on
visible_hostname sandkasten-egress
shutdown_lifetime 1 seconds
logfile_rotate 0

# Fields a sandbox chooses are URL-escaped (%#...): no spaces or newlines of theirs reach a log line.
logformat sandkasten %ts.%03tu %>a %Ss/%>Hs %#rm session=%{session}note rule=%{rule}note %#>rd %<a sni=%#ssl::>sni %#>rP
access_log stdio:${run}/access.log sandkasten

# The helper answers "OK|ERR session=<id> rule=<rule>"; ttl=0: policy.json changes apply to the next request.
# Values are URL-escaped (%#...): a newline in an SNI would otherwise split a request and shift every answer.
external_acl_type sk_dst ttl=0 negative_ttl=0 children-max=8 children-startup=1 children-idle=1 %SRC %#DST \
${python} -I ${dir}/egress_match.py ${dir}/policy.json
external_acl_type sk_sni ttl=0 negative_ttl=0 children-max=8 children-startup=1 children-idle=1 %SRC %#ssl::>sni \
%#DST ${python} -I ${dir}/egress_match.py ${dir}/policy.json

acl CONNECT method CONNECT
acl web_ports port 80 443
acl tls_ports port 443
acl policy external sk_dst
acl sni_policy external sk_sni
acl blocked_dst dst ${blocked}
acl step1 at_step SslBump1
acl r_port annotate_transaction rule=port
acl r_blocked annotate_transaction rule=blocked-address
acl r_sni annotate_transaction rule=sni-not-allowed
acl r_refuse annotate_transaction refused=yes
acl refused note refused yes

# The policy comes first: nothing is resolved for a name it refuses (blocked_dst resolves).
http_access deny manager
http_access deny !CONNECT !policy
http_access deny !CONNECT !web_ports r_port
http_access deny !CONNECT to_localhost r_blocked
http_access deny !CONNECT blocked_dst r_blocked
http_access allow !CONNECT
# A CONNECT denied here would be bumped to show the error under our certificate: refuse it in miss_access instead.
http_access allow !policy r_refuse
http_access allow !tls_ports r_port r_refuse
http_access allow to_localhost r_blocked r_refuse
http_access allow blocked_dst r_blocked r_refuse
http_access allow all
miss_access deny refused
miss_access allow all

# TLS is never decrypted: peek at the ClientHello, splice when its SNI is allowed too, else cut.
ssl_bump splice step1 refused
ssl_bump peek step1
ssl_bump splice sni_policy
ssl_bump terminate all r_sni
""")


def render_squid_conf(egress_dir: str, run_dir: str, listen_ip: str, port: int, blocked: Sequence[str]) -> str:
    """The squid.conf of a proxy on ``listen_ip:port`` with its files in ``egress_dir``, refusing ``blocked``."""
    same_for_all = {"user": PROXY_USER, "python": PYTHON}
    return SQUID_CONF.substitute(
        same_for_all, listen=listen_ip, port=port, dir=egress_dir, run=run_dir, blocked=" ".join(blocked)
    )


def blocked_networks(blocked_cidrs: Sequence[str], opened_cidrs: Sequence[str]) -> list[str]:
    """``blocked_cidrs`` less ``opened_cidrs``, as IPv4 networks, then ``BLOCKED_IPV6``.

    Squid's ``dst`` matches when any address of a name is listed, so the holes are cut out
    of the list instead of allowed after it: an opened address never lets a blocked one through.
    """
    opened = [ipaddress.IPv4Network(cidr) for cidr in opened_cidrs]
    remaining: list[ipaddress.IPv4Network] = []
    for cidr in blocked_cidrs:
        pieces = [ipaddress.IPv4Network(cidr)]
        for hole in opened:
            cut: list[ipaddress.IPv4Network] = []
            for piece in pieces:
                if hole.supernet_of(piece):
                    continue
                cut.extend(piece.address_exclude(hole) if piece.supernet_of(hole) else [piece])
            pieces = cut
        remaining.extend(pieces)
    return [str(network) for network in ipaddress.collapse_addresses(remaining)] + list(BLOCKED_IPV6)
