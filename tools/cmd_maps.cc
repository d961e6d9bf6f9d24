// skiffctl commands that read skiff's maps: nodes, services, conntrack and
// masquerade entries decoded in the datapath's terms, and `map dump` of any
// pinned map (raw bytes, plus the decoded form where the layout is known).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "bpf/maps.h"
#include "bpf/pins.h"
#include "commands.h"
#include "common/files.h"

namespace skiff::ctl {
namespace {

using nlohmann::json;
using Args = std::vector<std::string>;
using Bytes = std::vector<uint8_t>;
using Rows = std::vector<std::vector<std::string>>;
using FlagNames = std::vector<std::pair<uint32_t, const char*>>;

// ---- values in the datapath's terms ----

const FlagNames kLocalFlag = {{SKIFF_EP_F_LOCAL, "local"}};  // endpoints and nodes
const FlagNames kSvcFlags = {{SKIFF_SVC_F_AFFINITY, "affinity"}, {SKIFF_SVC_F_MAGLEV, "maglev"}};
const FlagNames kCtFlags = {{SKIFF_CT_F_SYN, "syn"}, {SKIFF_CT_F_CLOSING, "closing"},
                            {SKIFF_CT_F_SNAT, "snat"}, {SKIFF_CT_F_REPLIED, "replied"}};
const FlagNames kCfgFlags = {{SKIFF_CFG_F_MASQUERADE, "masquerade"}};
const FlagNames kTraceFlags = {{SKIFF_TRACE_F_REDIRECT_PEER, "redirect-peer"}, {SKIFF_TRACE_F_BACKEND, "backend"},
                               {SKIFF_TRACE_F_NEW, "new"}};

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

std::string joined(const json& flags) {
    std::string s;
    for (const auto& f : flags) s += (s.empty() ? "" : ",") + f.get<std::string>();
    return s.empty() ? "-" : s;
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
uint32_t host(uint32_t be) { return ntohl(be); }

std::string proto_str(uint8_t p) {
    switch (p) {
        case IPPROTO_TCP: return "tcp";
        case IPPROTO_UDP: return "udp";
        case IPPROTO_ICMP: return "icmp";
        default: return std::to_string(p);
    }
}

uint64_t now_ns() {  // the clock of bpf_ktime_get_ns()
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Seconds from a bpf_ktime_get_ns() stamp to now, to the millisecond.
double since(uint64_t now, uint64_t stamp) {
    return stamp >= now ? 0.0 : std::round(static_cast<double>(now - stamp) / 1e6) / 1e3;
}

std::string hex(const Bytes& b) {
    std::string s;
    char buf[4];
    for (uint8_t c : b) {
        std::snprintf(buf, sizeof(buf), "%02x", c);
        s += (s.empty() ? "" : " ") + std::string(buf);
    }
    return s;
}

json addr(uint32_t be_ip, uint16_t be_port) { return {{"addr", ip_str(be_ip)}, {"port", ntohs(be_port)}}; }

// ---- decoders, one per layout in maps/skiff_maps.h ----

json ep_value(const skiff_endpoint_info& v) {
    MacAddr pod{}, hostm{};
    std::copy(std::begin(v.pod_mac), std::end(v.pod_mac), pod.begin());
    std::copy(std::begin(v.host_mac), std::end(v.host_mac), hostm.begin());
    return {{"ifindex", v.ifindex}, {"flags", flag_list(v.flags, kLocalFlag)}, {"pod_mac", mac_str(pod)},
            {"host_mac", mac_str(hostm)}};
}

json cidr(const skiff_node_key& k) { return {{"cidr", ip_str(k.ip) + "/" + std::to_string(k.prefixlen)}}; }

json node_value(const skiff_node_info& v) {
    return {{"node_ip", ip_str(v.node_ip)}, {"flags", flag_list(v.flags, kLocalFlag)}};
}

json svc_key(const skiff_service_key& k) {
    return {{"vip", ip_str(k.vip)}, {"port", ntohs(k.port)}, {"proto", proto_str(k.proto)}, {"slot", k.slot}};
}

json svc_value(const skiff_service_key& k, const skiff_service_value& v) {
    if (k.slot) return {{"backend_id", v.backend_id}};
    return {{"count", v.count}, {"revnat_id", v.revnat_id}, {"flags", flag_list(v.flags, kSvcFlags)},
            {"affinity_timeout", v.affinity_timeout}};
}

json backend_value(const skiff_backend& b) {
    return {{"ip", ip_str(b.ip)}, {"port", ntohs(b.port)}, {"proto", proto_str(b.proto)}, {"flags", b.flags}};
}

json tuple(const skiff_ct_key& k) {
    return {{"proto", proto_str(k.proto)}, {"saddr", ip_str(k.saddr)}, {"sport", ntohs(k.sport)},
            {"daddr", ip_str(k.daddr)}, {"dport", ntohs(k.dport)}};
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
            {"flags", flag_list(v.flags, kCtFlags)}, {"backend_id", v.backend_id}, {"revnat_id", v.revnat_id},
            {"age_s", since(now, v.created_ns)}, {"idle_s", since(now, v.last_seen_ns)},
            {"packets", v.packets}, {"bytes", v.bytes}};
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
    return {{"nat", addr(v.addr, v.port)}, {"flags", flag_list(v.flags, kCtFlags)},
            {"age_s", since(now, v.created_ns)}, {"idle_s", since(now, v.last_seen_ns)},
            {"packets", v.packets}, {"bytes", v.bytes}};
}

struct Decoder {
    const char* map;
    size_t key_size, value_size;
    std::function<json(const uint8_t* key, const uint8_t* value, uint64_t now)> run;  // {"key", "value"}
};

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

const std::vector<Decoder>& decoders() {
    static const std::vector<Decoder> all = {
        dec<skiff_endpoint_key, skiff_endpoint_info>(SKIFF_MAP_ENDPOINTS, [](auto& k, auto& v, auto) {
            return KV{{{"ip", ip_str(k.ip)}}, ep_value(v)};
        }),
        dec<skiff_node_key, skiff_node_info>(SKIFF_MAP_NODES, [](auto& k, auto& v, auto) {
            return KV{cidr(k), node_value(v)};
        }),
        dec<skiff_node_key, uint32_t>(SKIFF_MAP_NOMASQ, [](auto& k, auto& v, auto) {
            return KV{cidr(k), v};
        }),
        dec<skiff_service_key, skiff_service_value>(SKIFF_MAP_SERVICES, [](auto& k, auto& v, auto) {
            return KV{svc_key(k), svc_value(k, v)};
        }),
        dec<uint32_t, skiff_backend>(SKIFF_MAP_BACKENDS, [](auto& k, auto& v, auto) {
            return KV{{{"backend_id", k}}, backend_value(v)};
        }),
        dec<skiff_revnat_key, skiff_revnat_value>(SKIFF_MAP_REVNAT, [](auto& k, auto& v, auto) {
            return KV{{{"id", k.id}},
                      {{"vip", ip_str(v.vip)}, {"port", ntohs(v.port)}, {"proto", proto_str(v.proto)}}};
        }),
        dec<skiff_ct_key, skiff_ct_value>(SKIFF_MAP_CT, [](auto& k, auto& v, auto now) {
            return KV{ct_key(k), ct_value(v, now)};
        }),
        dec<skiff_ct_key, skiff_nat_value>(SKIFF_MAP_SNAT, [](auto& k, auto& v, auto now) {
            return KV{nat_key(k), nat_value(v, now)};
        }),
        dec<skiff_affinity_key, skiff_affinity_value>(SKIFF_MAP_AFFINITY, [](auto& k, auto& v, auto now) {
            return KV{{{"client", ip_str(k.client)}, {"revnat_id", k.revnat_id}},
                      {{"backend_id", v.backend_id}, {"slot", v.slot}, {"idle_s", since(now, v.last_used_ns)}}};
        }),
        dec<skiff_maglev_key, uint32_t>(SKIFF_MAP_MAGLEV, [](auto& k, auto& v, auto) {
            return KV{{{"revnat_id", k.revnat_id}, {"index", k.index}}, {{"backend_id", v}}};
        }),
        dec<skiff_sock_revnat_key, skiff_sock_revnat_value>(SKIFF_MAP_SOCK_REVNAT, [](auto& k, auto& v, auto) {
            return KV{{{"cookie", k.cookie}, {"addr", ip_str(k.addr)}, {"port", ntohs(k.port)}},
                      {{"vip", ip_str(v.vip)}, {"port", ntohs(v.port)}}};
        }),
        dec<uint32_t, skiff_config>(SKIFF_MAP_CONFIG, [](auto& k, auto& v, auto) {
            return KV{{{"index", k}},
                      {{"node_ip", ip_str(v.node_ip)}, {"flags", flag_list(v.flags, kCfgFlags)},
                       {"netns_cookie", v.netns_cookie}, {"nat_port_min", v.nat_port_min},
                       {"nat_port_max", v.nat_port_max},
                       {"cluster_cidr", cidr_str(v.cluster_net, v.cluster_mask)},
                       {"cluster_mask", ip_str(v.cluster_mask)}}};
        }),
        dec<skiff_frag_key, skiff_frag_value>(SKIFF_MAP_FRAGS, [](auto& k, auto& v, auto) {
            return KV{{{"saddr", ip_str(k.saddr)}, {"daddr", ip_str(k.daddr)}, {"ip_id", ntohs(k.id)},
                       {"proto", proto_str(k.proto)}},
                      {{"addr", ip_str(v.addr)}}};
        }),
        dec<uint32_t, skiff_trace_result>(SKIFF_MAP_TRACE, [](auto& k, auto& v, auto) {
            return KV{{{"index", k}},
                      {{"reason", std::string(bpf::reason_name(v.reason))}, {"action", v.action},
                       {"redirect_ifindex", v.redirect_ifindex}, {"backend_id", v.backend_id},
                       {"flags", flag_list(v.flags, kTraceFlags)}, {"seq", v.seq}}};
        }),
        dec<uint32_t, skiff_metrics_value>(SKIFF_MAP_METRICS, [](auto& k, auto& v, auto) {
            return KV{{{"index", k}, {"reason", std::string(bpf::reason_name(k / SKIFF_DIR_MAX))},
                       {"direction", std::string(bpf::dir_name(k % SKIFF_DIR_MAX))}},
                      {{"packets", v.packets}, {"bytes", v.bytes}}};
        }),
    };
    return all;
}

// ---- reading pinned maps ----

bool per_cpu(uint32_t type) {
    return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
           type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

std::string type_name(uint32_t type) {
    const char* s = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type));
    return s ? s : "type " + std::to_string(type);
}

bool is_map(int fd) {
    char target[64] = {};
    std::string link = "/proc/self/fd/" + std::to_string(fd);
    return ::readlink(link.c_str(), target, sizeof(target) - 1) > 0 && std::string(target) == "anon_inode:bpf-map";
}

// Names of the maps pinned in the pin dir (programs and links left out).
Result<std::vector<std::string>> pinned_maps(const Options& o) {
    auto files = list_dir(o.pin_path);
    if (!files) return explain(files.error(), o);
    std::vector<std::string> out;
    for (const auto& f : *files) {
        UniqueFd fd(bpf_obj_get((o.pin_path + "/" + f).c_str()));
        if (!fd.valid()) {
            // For root, EACCES here means "not a bpf object" (pin path not on bpffs).
            if (errno == EPERM || (errno == EACCES && ::geteuid() != 0))
                return explain(Error::errno_("open " + o.pin_path + "/" + f), o);
            continue;
        }
        if (is_map(fd.get())) out.push_back(f);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string list_str(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
}

// A map that could not be found: no maps at all, or which ones there are.
Error missing(const Options& o, const std::string& name) {
    auto maps = pinned_maps(o);
    if (!maps) return maps.error();
    if (maps->empty()) return explain(Error{ENOENT, name}, o);
    return Error{ENOENT, "no map '" + name + "' pinned in " + o.pin_path + "; pinned maps: " + list_str(*maps)};
}

struct MapData {
    std::string name;
    bpf_map_info info{};
    bool percpu = false;
    std::vector<std::pair<Bytes, std::vector<Bytes>>> entries;  // key -> value (one per CPU if per-CPU)
};

Result<MapData> read_map(const Options& o, const std::string& name) {
    auto fd = bpf::open_pinned_map(o.pin_path, name);
    if (!fd) {
        // For root, EACCES means "not a bpf object" (a pin path not on bpffs).
        const int err = fd.error().code;
        return err == ENOENT || (err == EACCES && ::geteuid() == 0) ? missing(o, name) : explain(fd.error(), o);
    }
    if (!is_map(fd->get())) {
        auto maps = pinned_maps(o);
        return Error::invalid("'" + name + "' in " + o.pin_path + " is not a map" +
                              (maps && !maps->empty() ? "; pinned maps: " + list_str(*maps) : ""));
    }
    MapData m{name};
    uint32_t len = sizeof(m.info);
    if (int err = bpf_obj_get_info_by_fd(fd->get(), &m.info, &len); err)
        return explain(Error::os(-err, "read info of map " + name), o);
    if (m.info.key_size == 0)
        return Error{EOPNOTSUPP, name + " is a " + type_name(m.info.type) + " map: it has no entries to dump"};
    m.percpu = per_cpu(m.info.type);
    const int ncpu = m.percpu ? libbpf_num_possible_cpus() : 1;
    if (ncpu <= 0) return Error::os(-ncpu, "count possible CPUs");
    const size_t stride = m.percpu ? (m.info.value_size + 7) / 8 * 8 : m.info.value_size;
    Bytes cur(m.info.key_size), next(m.info.key_size), val(stride * static_cast<size_t>(ncpu));
    std::set<Bytes> seen;
    const void* prev = nullptr;
    for (size_t steps = 0; steps < 2 * static_cast<size_t>(m.info.max_entries) + 16; ++steps) {
        if (bpf_map_get_next_key(fd->get(), prev, next.data()) != 0) {
            if (errno == ENOENT) return m;
            return explain(Error::errno_("iterate map " + name), o);
        }
        cur = next;
        prev = cur.data();
        if (!seen.insert(next).second) continue;  // a deleted key restarts the walk
        if (bpf_map_lookup_elem(fd->get(), next.data(), val.data()) != 0) {
            if (errno == ENOENT) continue;  // deleted meanwhile
            return explain(Error::errno_("read map " + name), o);
        }
        auto& e = m.entries.emplace_back(next, std::vector<Bytes>{});
        for (size_t c = 0; c < static_cast<size_t>(ncpu); ++c)
            e.second.emplace_back(val.begin() + static_cast<long>(c * stride),
                                  val.begin() + static_cast<long>(c * stride + m.info.value_size));
    }
    return Error{EAGAIN, "map " + name + " kept changing while it was read; try again"};
}

template <typename K, typename V>
Result<std::vector<std::pair<K, V>>> read_typed(const Options& o, const char* name) {
    SKIFF_ASSIGN_OR_RETURN(MapData m, read_map(o, name));
    if (m.info.key_size != sizeof(K) || m.info.value_size != sizeof(V) || m.percpu)
        return Error::invalid(std::string(name) + " has " + std::to_string(m.info.key_size) + "-byte keys and " +
                              std::to_string(m.info.value_size) + "-byte values, skiffctl expects " +
                              std::to_string(sizeof(K)) + " and " + std::to_string(sizeof(V)) +
                              " (datapath and skiffctl from different versions?)");
    std::vector<std::pair<K, V>> out;
    for (const auto& [kb, vb] : m.entries) {
        K k{};
        V v{};
        std::memcpy(&k, kb.data(), sizeof(K));
        std::memcpy(&v, vb[0].data(), sizeof(V));
        out.emplace_back(k, v);
    }
    return out;
}

// ---- commands ----

std::string hostport(const json& ip, const json& port) {
    return ip.is_null() ? "?" : ip.get<std::string>() + ":" + std::to_string(port.get<int>());
}

std::string secs(const json& s) { return std::to_string(static_cast<uint64_t>(s.get<double>())) + "s"; }

std::string node_text(const json& d) {
    if (d.empty()) return "no nodes programmed\n";
    Rows rows{{"POD CIDR", "NODE IP", "FLAGS"}};
    for (const auto& e : d) rows.push_back({e["cidr"], e["node_ip"], joined(e["flags"])});
    return table(rows);
}

Result<Output> node_list(const Options& o, const Args&) {
    SKIFF_ASSIGN_OR_RETURN(auto nodes, (read_typed<skiff_node_key, skiff_node_info>(o, SKIFF_MAP_NODES)));
    std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
        return std::pair(host(a.first.ip), a.first.prefixlen) < std::pair(host(b.first.ip), b.first.prefixlen);
    });
    json doc = json::array();
    for (const auto& [k, v] : nodes) {
        json e = cidr(k);
        e.update(node_value(v));
        doc.push_back(e);
    }
    return Output{doc, node_text};
}

std::string service_text(const json& d) {
    Rows rows{{"FRONTEND", "FLAGS", "REV-NAT", "SLOT", "BACKEND", "ADDRESS"}};
    for (const auto& f : d["frontends"]) {
        std::string flags;
        for (const auto& fl : f["flags"]) {
            std::string s = fl;
            if (s == "affinity") s += "=" + f["affinity_timeout"].dump() + "s";
            flags += (flags.empty() ? "" : ",") + s;
        }
        // The frontend's columns on its first row only.
        std::vector<std::string> head{hostport(f["vip"], f["port"]) + "/" + f["proto"].get<std::string>(),
                                      flags.empty() ? "-" : flags, f["revnat_id"].dump()};
        if (f["backends"].empty()) rows.push_back({head[0], head[1], head[2], "-", "-", "(no backends)"});
        for (const auto& b : f["backends"]) {
            rows.push_back({head[0], head[1], head[2], b["slot"].dump(),
                            b["backend_id"].is_null() ? "missing" : b["backend_id"].dump(),
                            hostport(b["ip"], b["port"])});
            head = {"", "", ""};
        }
    }
    std::string out = d["frontends"].empty() ? "no services programmed\n" : table(rows);
    if (d["terminating"].empty()) return out;
    Rows term{{"BACKEND", "ADDRESS"}};
    for (const auto& b : d["terminating"])
        term.push_back({b["backend_id"].dump(), hostport(b["ip"], b["port"]) + "/" + b["proto"].get<std::string>()});
    return out + "\nbackends in no slot (terminating):\n" + table(term);
}

Result<Output> service_list(const Options& o, const Args&) {
    SKIFF_ASSIGN_OR_RETURN(auto svcs, (read_typed<skiff_service_key, skiff_service_value>(o, SKIFF_MAP_SERVICES)));
    SKIFF_ASSIGN_OR_RETURN(auto bes, (read_typed<uint32_t, skiff_backend>(o, SKIFF_MAP_BACKENDS)));
    const std::map<uint32_t, skiff_backend> backends(bes.begin(), bes.end());
    using Frontend = std::tuple<uint32_t, uint16_t, uint8_t>;  // VIP and port in host order, proto
    std::map<Frontend, std::pair<skiff_service_key, skiff_service_value>> fronts;
    std::map<Frontend, std::map<uint32_t, uint32_t>> slots;  // slot -> backend id
    for (const auto& [k, v] : svcs) {
        Frontend fe{host(k.vip), ntohs(k.port), k.proto};
        if (k.slot == 0) fronts[fe] = {k, v};
        else slots[fe][k.slot] = v.backend_id;
    }
    auto backend = [&](json id) {  // null id: a slot that is missing
        json b = {{"backend_id", id}, {"ip", nullptr}, {"port", nullptr}, {"proto", nullptr}};
        if (auto it = id.is_null() ? backends.end() : backends.find(id.get<uint32_t>()); it != backends.end()) {
            b.update(backend_value(it->second));
            b.erase("flags");
        }
        return b;
    };
    std::set<uint32_t> slotted;
    json list = json::array();
    for (const auto& [fe, kv] : fronts) {
        json e = svc_key(kv.first);
        e.erase("slot");
        e.update(svc_value(kv.first, kv.second));
        json bl = json::array();
        const auto& mine = slots[fe];
        for (uint32_t s = 1; s <= kv.second.count; ++s) {  // slots beyond count are on their way out
            auto it = mine.find(s);
            json b = backend(it == mine.end() ? json(nullptr) : json(it->second));
            if (it != mine.end()) slotted.insert(it->second);
            b["slot"] = s;
            bl.push_back(b);
        }
        e["backends"] = bl;
        list.push_back(e);
    }
    json term = json::array();
    for (const auto& [id, b] : backends)
        if (!slotted.count(id)) term.push_back(backend(id));
    return Output{{{"frontends", list}, {"terminating", term}}, service_text};
}

auto tuple_order(const skiff_ct_key& k) {
    return std::tuple(k.dir, k.proto, host(k.saddr), ntohs(k.sport), host(k.daddr), ntohs(k.dport));
}

template <typename V>
Result<json> tracked(const Options& o, const char* map, json (*key)(const skiff_ct_key&),
                     json (*value)(const V&, uint64_t)) {
    SKIFF_ASSIGN_OR_RETURN(auto entries, (read_typed<skiff_ct_key, V>(o, map)));
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return tuple_order(a.first) < tuple_order(b.first); });
    const uint64_t now = now_ns();
    json doc = json::array();
    for (const auto& [k, v] : entries) {
        json e = key(k);
        e.update(value(v, now));
        doc.push_back(e);
    }
    return doc;
}

std::string ct_text(const json& d) {
    if (d.empty()) return "no tracked connections\n";
    Rows rows{{"DIR", "PROTO", "SOURCE", "DESTINATION", "NAT", "SNAT", "FLAGS", "BACKEND", "REV-NAT", "AGE", "IDLE",
               "PACKETS", "BYTES"}};
    for (const auto& e : d)
        rows.push_back({e["direction"], e["proto"], hostport(e["saddr"], e["sport"]), hostport(e["daddr"], e["dport"]),
                        hostport(e["nat"]["addr"], e["nat"]["port"]),
                        e["snat"].is_null() ? "-" : hostport(e["snat"]["addr"], e["snat"]["port"]),
                        joined(e["flags"]), e["backend_id"].dump(), e["revnat_id"].dump(), secs(e["age_s"]),
                        secs(e["idle_s"]), e["packets"].dump(), e["bytes"].dump()});
    return table(rows);
}

Result<Output> ct_list(const Options& o, const Args&) {
    SKIFF_ASSIGN_OR_RETURN(json doc, tracked<skiff_ct_value>(o, SKIFF_MAP_CT, ct_key, ct_value));
    return Output{doc, ct_text};
}

std::string nat_text(const json& d) {
    if (d.empty()) return "no masqueraded flows\n";
    Rows rows{{"DIR", "PROTO", "SOURCE", "DESTINATION", "NAT", "FLAGS", "AGE", "IDLE", "PACKETS", "BYTES"}};
    for (const auto& e : d) {
        std::string src = hostport(e["saddr"], e["sport"]), dst = hostport(e["daddr"], e["dport"]);
        std::string nat = hostport(e["nat"]["addr"], e["nat"]["port"]);
        if (!e["echo_id"].is_null()) {  // ICMP echo: the identifier, on the pod's side
            const std::string id = " id " + e["echo_id"].dump();
            const bool egress = e["direction"] == "egress";
            src = e["saddr"].get<std::string>() + (egress ? id : "");
            dst = e["daddr"].get<std::string>() + (egress ? "" : id);
            nat = e["nat"]["addr"].get<std::string>() + " id " + e["nat"]["port"].dump();
        }
        rows.push_back({e["direction"], e["proto"], src, dst, nat, joined(e["flags"]), secs(e["age_s"]),
                        secs(e["idle_s"]), e["packets"].dump(), e["bytes"].dump()});
    }
    return table(rows);
}

Result<Output> nat_list(const Options& o, const Args&) {
    SKIFF_ASSIGN_OR_RETURN(json doc, tracked<skiff_nat_value>(o, SKIFF_MAP_SNAT, nat_key, nat_value));
    return Output{doc, nat_text};
}

std::string dump_text(const json& d) {
    std::string out = d["name"].get<std::string>() + ": " + d["type"].get<std::string>() + ", key " +
                      d["key_size"].dump() + " bytes, value " + d["value_size"].dump() + " bytes, max entries " +
                      d["max_entries"].dump() + ", " + std::to_string(d["entries"].size()) + " entries\n";
    for (const auto& e : d["entries"]) {
        out += "\nkey:   " + e["key"].get<std::string>() + "\n";
        if (e.contains("value")) out += "value: " + e["value"].get<std::string>() + "\n";
        for (const auto& c : e.value("values", json::array()))
            out += "value (CPU " + c["cpu"].dump() + "): " + c["value"].get<std::string>() + "\n";
        if (e.contains("sum") && !e["sum"].is_null()) out += "sum:   " + e["sum"].get<std::string>() + "\n";
        if (e.contains("decoded"))
            out += "  " + e["decoded"]["key"].dump() + " => " + e["decoded"]["value"].dump() + "\n";
    }
    return out;
}

Result<Output> map_dump(const Options& o, const Args& args) {
    if (args.size() != 1) return Error::invalid("usage: skiffctl map dump NAME (a map pinned in " + o.pin_path + ")");
    std::string name = args[0];
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
        return Error::invalid("invalid map name '" + name + "'");
    if (name.rfind("skiff_", 0) != 0 && !path_exists(o.pin_path + "/" + name) &&
        path_exists(o.pin_path + "/skiff_" + name))
        name = "skiff_" + name;  // "services" for "skiff_services"
    SKIFF_ASSIGN_OR_RETURN(MapData m, read_map(o, name));
    const Decoder* dec = nullptr;
    for (const auto& d : decoders())
        if (name == d.map && m.info.key_size == d.key_size && m.info.value_size == d.value_size) dec = &d;
    const bool sums = m.percpu && m.info.value_size % 8 == 0;  // per-CPU values add up as u64 counters
    const uint64_t now = now_ns();
    json entries = json::array();
    for (const auto& [k, vs] : m.entries) {
        json e = {{"key", hex(k)}};
        Bytes value = vs[0];
        if (m.percpu) {
            json per = json::array();
            std::vector<uint64_t> lanes(m.info.value_size / 8);
            for (size_t c = 0; c < vs.size(); ++c) {
                per.push_back({{"cpu", c}, {"value", hex(vs[c])}});
                for (size_t i = 0; sums && i < lanes.size(); ++i) {
                    uint64_t x;
                    std::memcpy(&x, vs[c].data() + 8 * i, 8);
                    lanes[i] += x;
                }
            }
            e["values"] = per;
            if (sums) std::memcpy(value.data(), lanes.data(), value.size());
            e["sum"] = sums ? json(hex(value)) : json(nullptr);
        } else {
            e["value"] = hex(value);
        }
        if (dec && (!m.percpu || sums)) e["decoded"] = dec->run(k.data(), value.data(), now);
        entries.push_back(e);
    }
    json doc = {{"name", m.name}, {"type", type_name(m.info.type)}, {"key_size", m.info.key_size},
                {"value_size", m.info.value_size}, {"max_entries", m.info.max_entries}, {"per_cpu", m.percpu},
                {"entries", entries}};
    return Output{doc, dump_text};
}

}  // namespace

std::vector<Noun> map_nouns() {
    return {
        {"node", {{"list", "", node_list}}, "list"},
        {"service", {{"list", "", service_list}}, "list"},
        {"ct", {{"list", "", ct_list}}, "list"},
        {"nat", {{"list", "", nat_list}}, "list"},
        {"map", {{"dump", "NAME", map_dump}}, ""},
    };
}

}  // namespace skiff::ctl
