#include "config.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "http.h"

namespace skiff::agent {

using nlohmann::json;

namespace {

Error bad(const std::string& msg) { return Error::invalid("agent config: " + msg); }

Result<std::string> req_str(const json& j, const char* key) {
    if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty())
        return bad(std::string("'") + key + "' is required and must be a non-empty string");
    return j[key].get<std::string>();
}

Status opt_str(const json& j, const char* key, std::string& out) {
    if (!j.contains(key) || j[key].is_null()) return ok();
    if (!j[key].is_string()) return bad(std::string("'") + key + "' must be a string");
    out = j[key].get<std::string>();
    if (out.empty() || out[0] != '/') {
        if (std::string(key) != "listen") return bad(std::string("'") + key + "' must be an absolute path");
    }
    return ok();
}

}  // namespace

std::string_view routing_mode_name(RoutingMode m) {
    switch (m) {
        case RoutingMode::Native: return "native";
        case RoutingMode::Vxlan: return "vxlan";
        case RoutingMode::VxlanCrossSubnet: return "vxlan-cross-subnet";
    }
    return "?";
}

Result<AgentConfig> parse_agent_config(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
    AgentConfig c;
    const bool kube = j.contains("source") && j["source"].is_object() && j["source"].contains("kubernetes");
    // The Kubernetes source can learn who and where the node is.
    auto node_key = [&](const char* key, std::string& out, const char* env) -> Status {
        if (kube && !j.contains(key)) {
            const char* v = env ? std::getenv(env) : nullptr;
            out = v ? v : "";
            if (env && out.empty()) return bad(std::string("'") + key + "' is required unless $" + env + " is set");
            return ok();
        }
        SKIFF_ASSIGN_OR_RETURN(out, req_str(j, key));
        return ok();
    };
    SKIFF_TRY(node_key("nodeName", c.node_name, "NODE_NAME"));
    std::string ip;
    SKIFF_TRY(node_key("nodeIP", ip, nullptr));
    if (!ip.empty()) {
        auto nip = Ipv4::parse(ip);
        if (!nip) return bad("'nodeIP': " + nip.error().message);
        c.node_ip = *nip;
    }
    c.node_ip_known = !ip.empty();
    SKIFF_TRY(node_key("uplink", c.uplink, nullptr));
    SKIFF_ASSIGN_OR_RETURN(std::string cc, req_str(j, "clusterCIDR"));
    auto cidr = Ipv4Prefix::parse(cc);
    if (!cidr) return bad("'clusterCIDR': " + cidr.error().message);
    c.cluster_cidr = *cidr;
    SKIFF_TRY(opt_str(j, "pinPath", c.pin_path));
    SKIFF_TRY(opt_str(j, "stateDir", c.state_dir));
    SKIFF_TRY(opt_str(j, "cniConfDir", c.cni_conf_dir));
    SKIFF_TRY(opt_str(j, "cniLogFile", c.cni_log_file));
    SKIFF_TRY(opt_str(j, "socketLBCgroup", c.socket_lb_cgroup));
    SKIFF_TRY(opt_str(j, "listen", c.listen));
    if (auto l = parse_listen(c.listen); !l) return bad("'listen': " + l.error().message);
    if (j.contains("cniVersion")) {
        if (!j["cniVersion"].is_string()) return bad("'cniVersion' must be a string");
        c.cni_version = j["cniVersion"].get<std::string>();
        static const char* known[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
        if (std::find(std::begin(known), std::end(known), c.cni_version) == std::end(known))
            return bad("'cniVersion' " + c.cni_version + " is not one skiff speaks");
    }
    for (const char* key : {"mtu", "resyncSeconds"}) {
        if (!j.contains(key)) continue;
        if (!j[key].is_number_unsigned()) return bad(std::string("'") + key + "' must be a positive integer");
        uint64_t wide = j[key].get<uint64_t>();  // range-check before narrowing
        if (wide > 65535) return bad(std::string("'") + key + "' is too large");
        unsigned v = static_cast<unsigned>(wide);
        if (std::string(key) == "mtu") {
            if (v < 68 || v > 65535) return bad("'mtu' must be within 68-65535");
            c.mtu = v;
        } else {
            if (v == 0) return bad("'resyncSeconds' must be at least 1");
            c.resync_seconds = v;
        }
    }
    if (j.contains("routingMode")) {
        if (!j["routingMode"].is_string()) return bad("'routingMode' must be a string");
        const auto m = j["routingMode"].get<std::string>();
        if (m == "native")
            c.routing_mode = RoutingMode::Native;
        else if (m == "vxlan")
            c.routing_mode = RoutingMode::Vxlan;
        else if (m == "vxlan-cross-subnet")
            c.routing_mode = RoutingMode::VxlanCrossSubnet;
        else
            return bad("'routingMode' must be native, vxlan or vxlan-cross-subnet, got '" + m + "'");
    }
    if (j.contains("tunnel")) {
        const auto& t = j["tunnel"];
        if (!t.is_object()) return bad("'tunnel' must be an object");
        for (const auto& [k, v] : t.items())
            if (k != "port" && k != "vni" && k != "device") return bad("'tunnel." + k + "' is not a tunnel setting");
        if (t.contains("port")) {
            if (!t["port"].is_number_unsigned() || t["port"].get<uint64_t>() < 1 || t["port"].get<uint64_t>() > 65535)
                return bad("'tunnel.port' must be 1-65535");
            c.tunnel.port = static_cast<uint16_t>(t["port"].get<uint64_t>());
        }
        if (t.contains("vni")) {
            if (!t["vni"].is_number_unsigned() || t["vni"].get<uint64_t>() > 0xffffff)
                return bad("'tunnel.vni' must be 0-16777215");
            c.tunnel.vni = static_cast<uint32_t>(t["vni"].get<uint64_t>());
        }
        if (t.contains("device")) {
            if (!t["device"].is_string()) return bad("'tunnel.device' must be a string");
            c.tunnel.device = t["device"].get<std::string>();
            const auto& d = c.tunnel.device;
            bool valid = !d.empty() && d.size() < 16 && d != "." && d != "..";
            for (char ch : d)
                if (ch == '/' || ch == ':' || static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f) valid = false;
            if (!valid)
                return bad("'tunnel.device' must be an interface name (1-15 characters, no '/', ':' or spaces)");
        }
    }
    if (j.contains("maxObjects")) {
        if (!j["maxObjects"].is_number_unsigned() || j["maxObjects"].get<uint64_t>() < 1 ||
            j["maxObjects"].get<uint64_t>() > 10000000)
            return bad("'maxObjects' must be 1-10000000");
        c.max_objects = static_cast<size_t>(j["maxObjects"].get<uint64_t>());
    }
    if (j.contains("podCIDR") && !j["podCIDR"].is_null()) {
        if (!j["podCIDR"].is_string()) return bad("'podCIDR' must be a string");
        auto p = Ipv4Prefix::parse(j["podCIDR"].get<std::string>());
        if (!p) return bad("'podCIDR': " + p.error().message);
        if (!c.cluster_cidr.contains(p->network()) || p->len() < c.cluster_cidr.len())
            return bad("'podCIDR' " + p->str() + " is outside clusterCIDR " + c.cluster_cidr.str());
        c.pod_cidr = *p;
    }
    if (j.contains("podCIDRSize")) {
        if (!j["podCIDRSize"].is_number_unsigned() || j["podCIDRSize"].get<uint64_t>() > 32)
            return bad("'podCIDRSize' must be a prefix length");
        c.pod_cidr_size = static_cast<int>(j["podCIDRSize"].get<uint64_t>());
        if (c.pod_cidr_size < c.cluster_cidr.len() || c.pod_cidr_size > 30)
            return bad("'podCIDRSize' must be between the clusterCIDR's length and 30");
    }
    if (j.contains("masquerade")) {
        const auto& m = j["masquerade"];
        if (!m.is_object()) return bad("'masquerade' must be an object");
        if (m.contains("enabled")) {
            if (!m["enabled"].is_boolean()) return bad("'masquerade.enabled' must be a boolean");
            c.masquerade.enabled = m["enabled"].get<bool>();
        }
        if (m.contains("portRange")) {
            if (!m["portRange"].is_string()) return bad("'masquerade.portRange' must be \"LOW-HIGH\"");
            std::string r = m["portRange"].get<std::string>();
            auto dash = r.find('-');
            unsigned lo = 0, hi = 0;
            char extra = 0;
            if (dash == std::string::npos || std::sscanf(r.c_str(), "%u-%u%c", &lo, &hi, &extra) != 2 || lo < 1024 ||
                hi > 65535 || lo > hi)
                return bad("'masquerade.portRange' must be LOW-HIGH within 1024-65535, got '" + r + "'");
            c.masquerade.port_min = static_cast<uint16_t>(lo);
            c.masquerade.port_max = static_cast<uint16_t>(hi);
        }
        if (m.contains("nonMasqueradeCIDRs")) {
            if (!m["nonMasqueradeCIDRs"].is_array()) return bad("'masquerade.nonMasqueradeCIDRs' must be a list");
            for (const auto& x : m["nonMasqueradeCIDRs"]) {
                if (!x.is_string()) return bad("'masquerade.nonMasqueradeCIDRs' must hold CIDR strings");
                auto p = Ipv4Prefix::parse(x.get<std::string>());
                if (!p) return bad("'masquerade.nonMasqueradeCIDRs': " + p.error().message);
                c.masquerade.non_masquerade.push_back(*p);
            }
        }
    }
    // The uplink hands the tunnel port's packets to the VXLAN socket before
    // it looks for masquerade replies.
    if (c.masquerade.enabled && c.tunnel.port >= c.masquerade.port_min && c.tunnel.port <= c.masquerade.port_max)
        return bad("'tunnel.port' " + std::to_string(c.tunnel.port) + " lies in 'masquerade.portRange' " +
                   std::to_string(c.masquerade.port_min) + "-" + std::to_string(c.masquerade.port_max));
    if (j.contains("conntrack")) {
        const auto& ct = j["conntrack"];
        if (!ct.is_object()) return bad("'conntrack' must be an object");
        struct Field {
            const char* key;
            uint32_t* out;
        } fields[] = {{"tcpTimeoutSeconds", &c.ct_timeouts.tcp_established},
                      {"tcpSynTimeoutSeconds", &c.ct_timeouts.tcp_syn},
                      {"tcpClosingTimeoutSeconds", &c.ct_timeouts.tcp_closing},
                      {"udpTimeoutSeconds", &c.ct_timeouts.udp},
                      {"gcIntervalSeconds", &c.ct_gc_interval_seconds}};
        for (const auto& f : fields) {
            if (!ct.contains(f.key)) continue;
            if (!ct[f.key].is_number_unsigned() || ct[f.key].get<uint64_t>() < 1 || ct[f.key].get<uint64_t>() > 604800)
                return bad(std::string("'conntrack.") + f.key + "' must be 1-604800 seconds");
            *f.out = static_cast<uint32_t>(ct[f.key].get<uint64_t>());
        }
    }
    if (!j.contains("source") || !j["source"].is_object())
        return bad("'source' is required: {\"file\": PATH}, {\"etcd\": {...}} or {\"kubernetes\": {...}}");
    const auto& src = j["source"];
    if (src.contains("file") + src.contains("etcd") + src.contains("kubernetes") != 1)
        return bad("'source' needs exactly one of 'file', 'etcd' and 'kubernetes'");
    if (kube) {
        const auto& k = src["kubernetes"];
        if (!k.is_object()) return bad("'source.kubernetes' must be an object");
        KubernetesSourceConfig kc;
        for (auto [key, out] : {std::pair{"kubeconfig", &kc.kubeconfig}, std::pair{"context", &kc.context}}) {
            if (!k.contains(key)) continue;
            if (!k[key].is_string()) return bad(std::string("'source.kubernetes.") + key + "' must be a string");
            *out = k[key].get<std::string>();
        }
        if (!kc.kubeconfig.empty() && kc.kubeconfig[0] != '/')
            return bad("'source.kubernetes.kubeconfig' must be an absolute path");
        c.kubernetes_source = kc;
    } else if (src.contains("file")) {
        if (!src["file"].is_string() || src["file"].get<std::string>().rfind('/', 0) != 0)
            return bad("'source.file' must be an absolute path");
        c.file_source = src["file"].get<std::string>();
    } else if (src.contains("etcd")) {
        const auto& e = src["etcd"];
        EtcdSourceConfig ec;
        if (!e.is_object() || !e.contains("endpoints") || !e["endpoints"].is_array() || e["endpoints"].empty())
            return bad("'source.etcd.endpoints' must be a non-empty list of URLs");
        for (const auto& u : e["endpoints"]) {
            if (!u.is_string()) return bad("'source.etcd.endpoints' must hold strings");
            ec.endpoints.push_back(u.get<std::string>());
        }
        if (e.contains("leaseTTL")) {
            if (!e["leaseTTL"].is_number_unsigned() || e["leaseTTL"].get<uint64_t>() < 2 ||
                e["leaseTTL"].get<uint64_t>() > 3600)
                return bad("'source.etcd.leaseTTL' must be 2-3600 seconds");
            ec.lease_ttl = static_cast<int>(e["leaseTTL"].get<unsigned>());
        }
        if (e.contains("prefix")) {
            if (!e["prefix"].is_string()) return bad("'source.etcd.prefix' must be a string");
            ec.prefix = e["prefix"].get<std::string>();
        }
        c.etcd_source = ec;
    } else {
        return bad("'source' needs 'file' or 'etcd'");
    }
    return c;
}

Result<AgentConfig> load_agent_config(const std::string& path) {
    SKIFF_ASSIGN_OR_RETURN(std::string text, read_file(path));
    return parse_agent_config(text);
}

}  // namespace skiff::agent
