// The decoders of map_decode.h: skiff's keys and values in the datapath's
// terms (addresses, ports in host order, protocol and flag names, ages).
#include "map_decode.h"

#include <arpa/inet.h>
#include <time.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>

#include "datapath/maps.h"
#include "common/ipv4.h"

namespace skiff::ctl {

using nlohmann::json;

namespace {

using FlagNames = std::vector<std::pair<uint32_t, const char*>>;

// ---- values in the datapath's terms ----

const FlagNames kLocalFlag = {{SKIFF_EP_F_LOCAL, "local"}};  // endpoints
const FlagNames kNodeFlags = {
    {SKIFF_NODE_F_LOCAL, "local"}, {SKIFF_NODE_F_ENCAP, "encap"}, {SKIFF_NODE_F_HOST, "host"}};
const FlagNames kSvcFlags = {{SKIFF_SVC_F_AFFINITY, "affinity"}, {SKIFF_SVC_F_MAGLEV, "maglev"}};
const FlagNames kCtFlags = {{SKIFF_CT_F_SYN, "syn"},
                            {SKIFF_CT_F_CLOSING, "closing"},
                            {SKIFF_CT_F_SNAT, "snat"},
                            {SKIFF_CT_F_REPLIED, "replied"}};
const FlagNames kCfgFlags = {{SKIFF_CFG_F_MASQUERADE, "masquerade"}};
const FlagNames kTraceFlags = {{SKIFF_TRACE_F_REDIRECT_PEER, "redirect-peer"},
                               {SKIFF_TRACE_F_BACKEND, "backend"},
                               {SKIFF_TRACE_F_NEW, "new"},
                               {SKIFF_TRACE_F_TUNNEL, "tunnel"}};

json flag_list(uint32_t flags, const FlagNames& names) {
    json out = json::array();
    for (const auto& [bit, name] : names)
        if (flags & bit) {
            out.push_back(name);
            flags &= ~bit;
        }
    if (flags) {
        char buf[16];
        std::snprintf(buf, sizeof(buf), "0x%x", flags);
        out.push_back(buf);
    }
    return out;
}

std::string ip_str(uint32_t be) { return Ipv4::from_be(be).str(); }

// net/len from a network-order address and netmask; a mask that is not a
// prefix (e.g. written in host order) shows as net/mask instead.
std::string cidr_str(uint32_t net_be, uint32_t mask_be) {
    const uint32_t mask = ntohl(mask_be);
    const int len = std::countl_one(mask);
    if (std::popcount(mask) != len) return ip_str(net_be) + "/" + ip_str(mask_be);
    return ip_str(net_be) + "/" + std::to_string(len);
}

std::string proto_str(uint8_t p) {
    switch (p) {
        case IPPROTO_TCP: return "tcp";
        case IPPROTO_UDP: return "udp";
        case IPPROTO_ICMP: return "icmp";
        default: return std::to_string(p);
    }
}

// Seconds from a bpf_ktime_get_ns() stamp to now, to the millisecond.
double since(uint64_t now, uint64_t stamp) {
    return stamp >= now ? 0.0 : std::round(static_cast<double>(now - stamp) / 1e6) / 1e3;
}

json addr(uint32_t be_ip, uint16_t be_port) { return {{"addr", ip_str(be_ip)}, {"port", ntohs(be_port)}}; }

MacAddr mac_of(const uint8_t (&m)[SKIFF_ETH_ALEN]) {
    MacAddr a{};
    std::copy(std::begin(m), std::end(m), a.begin());
    return a;
}

json ep_value(const skiff_endpoint_info& v) {
    return {{"ifindex", v.ifindex},
            {"flags", flag_list(v.flags, kLocalFlag)},
            {"pod_mac", mac_str(mac_of(v.pod_mac))},
            {"host_mac", mac_str(mac_of(v.host_mac))}};
}

json tuple(const skiff_ct_key& k) {
    return {{"proto", proto_str(k.proto)},
            {"saddr", ip_str(k.saddr)},
            {"sport", ntohs(k.sport)},
            {"daddr", ip_str(k.daddr)},
            {"dport", ntohs(k.dport)}};
}

template <typename K, typename V, typename F>
Decoder dec(const char* map, F f) {
    return {map, sizeof(K), sizeof(V), [f](const uint8_t* kp, const uint8_t* vp, uint64_t now) {
                K k{};
                V v{};
                std::memcpy(&k, kp, sizeof(K));
                std::memcpy(&v, vp, sizeof(V));
                auto [kj, vj] = f(k, v, now);
                return json{{"key", kj}, {"value", vj}};
            }};
}

using KV = std::pair<json, json>;

}  // namespace

std::string hex(const std::vector<uint8_t>& b) {
    std::string s;
    char buf[4];
    for (uint8_t c : b) {
        std::snprintf(buf, sizeof(buf), "%02x", c);
        s += (s.empty() ? "" : " ") + std::string(buf);
    }
    return s;
}

// ---- decoders, one per layout in maps/skiff_maps.h ----

json cidr(const skiff_node_key& k) { return {{"cidr", ip_str(k.ip) + "/" + std::to_string(k.prefixlen)}}; }

json node_value(const skiff_node_info& v) {
    return {{"node_ip", ip_str(v.node_ip)}, {"flags", flag_list(v.flags, kNodeFlags)}};
}

// A cached FIB answer; "expires_in_ms" is null once expired.
Decoder nexthop_decoder() {
    return dec<skiff_nexthop_key, skiff_nexthop>(SKIFF_MAP_NEXTHOPS, [](auto& k, auto& v, uint64_t now) {
        json left = v.expires > now ? json((v.expires - now) / 1000000) : json(nullptr);
        return KV{{{"saddr", ip_str(k.saddr)}, {"node_ip", ip_str(k.node_ip)}},
                  {{"ifindex", v.ifindex},
                   {"mtu", v.mtu},
                   {"smac", mac_str(mac_of(v.smac))},
                   {"dmac", mac_str(mac_of(v.dmac))},
                   {"expires_in_ms", left}}};
    });
}

json svc_key(const skiff_service_key& k) {
    return {{"vip", ip_str(k.vip)}, {"port", ntohs(k.port)}, {"proto", proto_str(k.proto)}, {"slot", k.slot}};
}

json svc_value(const skiff_service_key& k, const skiff_service_value& v) {
    if (k.slot) return {{"backend_id", v.backend_id}};
    return {{"count", v.count},
            {"revnat_id", v.revnat_id},
            {"flags", flag_list(v.flags, kSvcFlags)},
            {"affinity_timeout", v.affinity_timeout}};
}

json backend_value(const skiff_l4_addr& b) {
    return {{"ip", ip_str(b.ip)}, {"port", ntohs(b.port)}, {"proto", proto_str(b.proto)}};
}

json ct_key(const skiff_ct_key& k) {
    json j = tuple(k);
    j["direction"] = k.dir == SKIFF_CT_FORWARD ? "forward" : k.dir == SKIFF_CT_REPLY ? "reply" : std::to_string(k.dir);
    return j;
}

json ct_value(const skiff_ct_value& v, uint64_t now) {
    const bool snat = v.flags & SKIFF_CT_F_SNAT;
    return {{"nat", addr(v.nat_addr, v.nat_port)},
            {"snat", snat ? addr(v.snat_addr, v.snat_port) : json(nullptr)},
            {"flags", flag_list(v.flags, kCtFlags)},
            {"backend_id", v.backend_id},
            {"revnat_id", v.revnat_id},
            {"age_s", since(now, v.created_ns)},
            {"idle_s", since(now, v.last_seen_ns)},
            {"packets", v.packets},
            {"bytes", v.bytes}};
}

// ICMP echo: the identifier is the request's source "port" and the reply's
// destination "port"; the translation's port is the identifier written in.
json nat_key(const skiff_ct_key& k) {
    json j = tuple(k);
    const bool in = k.dir == SKIFF_SNAT_INGRESS;
    j["direction"] = in ? "ingress" : k.dir == SKIFF_SNAT_EGRESS ? "egress" : std::to_string(k.dir);
    j["echo_id"] = k.proto == IPPROTO_ICMP ? json(ntohs(in ? k.dport : k.sport)) : json(nullptr);
    return j;
}

json nat_value(const skiff_nat_value& v, uint64_t now) {
    return {{"nat", addr(v.addr, v.port)},
            {"flags", flag_list(v.flags, kCtFlags)},
            {"age_s", since(now, v.created_ns)},
            {"idle_s", since(now, v.last_seen_ns)},
            {"packets", v.packets},
            {"bytes", v.bytes}};
}

const std::vector<Decoder>& decoders() {
    static const std::vector<Decoder> all = {
        dec<skiff_endpoint_key, skiff_endpoint_info>(SKIFF_MAP_ENDPOINTS,
                                                     [](auto& k, auto& v, auto) {
                                                         return KV{{{"ip", ip_str(k.ip)}}, ep_value(v)};
                                                     }),
        dec<uint32_t, skiff_pod_source>(SKIFF_MAP_POD_SOURCES,
                                        [](auto& k, auto& v, auto) {
                                            return KV{{{"slot", k}}, {{"ifindex", v.ifindex}, {"ip", ip_str(v.ip)}}};
                                        }),
        nexthop_decoder(),
        dec<skiff_node_key, skiff_node_info>(SKIFF_MAP_NODES,
                                             [](auto& k, auto& v, auto) {
                                                 return KV{cidr(k), node_value(v)};
                                             }),
        dec<skiff_node_key, uint32_t>(SKIFF_MAP_NOMASQ,
                                      [](auto& k, auto& v, auto) {
                                          return KV{cidr(k), v};
                                      }),
        dec<skiff_service_key, skiff_service_value>(SKIFF_MAP_SERVICES,
                                                    [](auto& k, auto& v, auto) {
                                                        return KV{svc_key(k), svc_value(k, v)};
                                                    }),
        dec<uint32_t, skiff_l4_addr>(SKIFF_MAP_BACKENDS,
                                     [](auto& k, auto& v, auto) {
                                         return KV{{{"backend_id", k}}, backend_value(v)};
                                     }),
        dec<skiff_revnat_key, skiff_l4_addr>(
            SKIFF_MAP_REVNAT,
            [](auto& k, auto& v, auto) {
                return KV{{{"id", k.id}},
                          {{"vip", ip_str(v.ip)}, {"port", ntohs(v.port)}, {"proto", proto_str(v.proto)}}};
            }),
        dec<skiff_ct_key, skiff_ct_value>(SKIFF_MAP_CT,
                                          [](auto& k, auto& v, auto now) {
                                              return KV{ct_key(k), ct_value(v, now)};
                                          }),
        dec<skiff_ct_key, skiff_nat_value>(SKIFF_MAP_SNAT,
                                           [](auto& k, auto& v, auto now) {
                                               return KV{nat_key(k), nat_value(v, now)};
                                           }),
        dec<skiff_affinity_key, skiff_affinity_value>(
            SKIFF_MAP_AFFINITY,
            [](auto& k, auto& v, auto now) {
                return KV{{{"client", ip_str(k.client)}, {"revnat_id", k.revnat_id}},
                          {{"backend_id", v.backend_id}, {"slot", v.slot}, {"idle_s", since(now, v.last_used_ns)}}};
            }),
        dec<skiff_maglev_key, uint32_t>(
            SKIFF_MAP_MAGLEV,
            [](auto& k, auto& v, auto) {
                return KV{{{"revnat_id", k.revnat_id}, {"index", k.index}}, {{"backend_id", v}}};
            }),
        dec<skiff_sock_revnat_key, skiff_sock_revnat_value>(
            SKIFF_MAP_SOCK_REVNAT,
            [](auto& k, auto& v, auto) {
                return KV{{{"cookie", k.cookie}, {"addr", ip_str(k.addr)}, {"port", ntohs(k.port)}},
                          {{"vip", ip_str(v.vip)}, {"port", ntohs(v.port)}}};
            }),
        dec<uint32_t, skiff_config>(SKIFF_MAP_CONFIG,
                                    [](auto& k, auto& v, auto) {
                                        return KV{{{"index", k}},
                                                  {{"node_ip", ip_str(v.node_ip)},
                                                   {"flags", flag_list(v.flags, kCfgFlags)},
                                                   {"netns_cookie", v.netns_cookie},
                                                   {"nat_port_min", v.nat_port_min},
                                                   {"nat_port_max", v.nat_port_max},
                                                   {"cluster_cidr", cidr_str(v.cluster_net, v.cluster_mask)},
                                                   {"cluster_mask", ip_str(v.cluster_mask)},
                                                   {"tunnel_ifindex", v.tunnel_ifindex},
                                                   {"tunnel_vni", v.tunnel_vni},
                                                   {"tunnel_port", ntohs(v.tunnel_port)}}};
                                    }),
        dec<skiff_frag_key, skiff_frag_value>(SKIFF_MAP_FRAGS,
                                              [](auto& k, auto& v, auto) {
                                                  return KV{{{"saddr", ip_str(k.saddr)},
                                                             {"daddr", ip_str(k.daddr)},
                                                             {"ip_id", ntohs(k.id)},
                                                             {"proto", proto_str(k.proto)}},
                                                            {{"addr", ip_str(v.addr)}}};
                                              }),
        dec<uint32_t, skiff_trace_result>(SKIFF_MAP_TRACE,
                                          [](auto& k, auto& v, auto) {
                                              return KV{{{"index", k}},
                                                        {{"reason", std::string(datapath::reason_name(v.reason))},
                                                         {"action", v.action},
                                                         {"redirect_ifindex", v.redirect_ifindex},
                                                         {"backend_id", v.backend_id},
                                                         {"flags", flag_list(v.flags, kTraceFlags)},
                                                         {"seq", v.seq},
                                                         {"tunnel_remote", ip_str(v.tunnel_remote)},
                                                         {"tunnel_vni", v.tunnel_vni}}};
                                          }),
        dec<uint32_t, skiff_metrics_value>(SKIFF_MAP_METRICS,
                                           [](auto& k, auto& v, auto) {
                                               return KV{
                                                   {{"index", k},
                                                    {"reason", std::string(datapath::reason_name(k / SKIFF_DIR_MAX))},
                                                    {"direction", std::string(datapath::dir_name(k % SKIFF_DIR_MAX))}},
                                                   {{"packets", v.packets}, {"bytes", v.bytes}}};
                                           }),
    };
    return all;
}

}  // namespace skiff::ctl
