#include "services.h"

#include <netinet/in.h>

#include <algorithm>
#include <optional>
#include <set>

namespace skiff::agent {

using nlohmann::json;

std::string L4Addr::str() const {
    return ip.str() + ":" + std::to_string(port) + (proto == IPPROTO_UDP ? "/udp" : "/tcp");
}

namespace {

std::string sget(const json& j, const char* key, const std::string& def = "") {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : def;
}

const json& obj(const json& j, const char* key) {
    static const json empty = json::object();
    auto it = j.find(key);
    return it != j.end() && it->is_object() ? *it : empty;
}

const json& arr(const json& j, const char* key) {
    static const json empty = json::array();
    auto it = j.find(key);
    return it != j.end() && it->is_array() ? *it : empty;
}

std::optional<uint8_t> proto_of(const json& p) {
    std::string s = sget(p, "protocol", "TCP");
    if (s == "TCP") return IPPROTO_TCP;
    if (s == "UDP") return IPPROTO_UDP;
    return std::nullopt;
}

std::optional<uint16_t> port_of(const json& p, const char* key) {
    auto it = p.find(key);
    if (it == p.end() || !it->is_number_integer()) return std::nullopt;
    long long v = it->get<long long>();
    if (v < 1 || v > 65535) return std::nullopt;
    return static_cast<uint16_t>(v);
}

bool cond(const json& e, const char* key, bool def) {
    const json& c = obj(e, "conditions");
    auto it = c.find(key);
    return it != c.end() && it->is_boolean() ? it->get<bool>() : def;
}

struct SliceEndpoints {
    // per slice port (name, proto) -> port number
    std::vector<std::pair<std::pair<std::string, uint8_t>, uint16_t>> ports;
    std::vector<std::pair<Ipv4, int>> addrs;  // 0 ready, 1 terminating (serving), 2 neither
};

}  // namespace

ServicePlan plan_services(const ClusterSpec& spec, const NodeContext& node) {
    ServicePlan plan;
    // EndpointSlices by "<namespace>/<service>".
    std::map<std::string, std::vector<SliceEndpoints>> slices;
    for (const auto& s : spec.endpoint_slices) {
        const json& meta = obj(s, "metadata");
        std::string svc = sget(obj(meta, "labels"), "kubernetes.io/service-name");
        std::string ns = sget(meta, "namespace", "default");
        std::string what = "EndpointSlice " + ns + "/" + sget(meta, "name", "?");
        if (svc.empty()) {
            plan.problems.push_back(what + ": no kubernetes.io/service-name label: skipped");
            continue;
        }
        if (sget(s, "addressType", "IPv4") != "IPv4") continue;  // the IPv6 half of dual-stack
        SliceEndpoints se;
        bool bad = false;
        for (const auto& p : arr(s, "ports")) {
            auto proto = proto_of(p);
            auto port = port_of(p, "port");
            if (!proto || !port) {
                plan.problems.push_back(what + ": invalid port " + p.dump() + ": skipped");
                bad = true;
                break;
            }
            se.ports.push_back({{sget(p, "name"), *proto}, *port});
        }
        for (const auto& e : arr(s, "endpoints")) {
            if (bad) break;
            const json& addrs = arr(e, "addresses");
            if (addrs.empty() || !addrs[0].is_string()) continue;
            auto ip = Ipv4::parse(addrs[0].get<std::string>());
            if (!ip) {
                plan.problems.push_back(what + ": invalid address " + addrs[0].dump() + ": skipped");
                bad = true;
                break;
            }
            // Kubernetes: an unknown "ready" counts as ready.
            bool ready = cond(e, "ready", true), serving = cond(e, "serving", ready);
            bool terminating = cond(e, "terminating", false);
            se.addrs.emplace_back(*ip, ready && !terminating ? 0 : (serving ? 1 : 2));
        }
        if (!bad) slices[ns + "/" + svc].push_back(std::move(se));
    }

    std::vector<std::pair<std::string, const json*>> services;
    for (const auto& s : spec.services) {
        const json& meta = obj(s, "metadata");
        services.emplace_back(sget(meta, "namespace", "default") + "/" + sget(meta, "name", "?"), &s);
    }
    std::sort(services.begin(), services.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });

    std::map<L4Addr, std::string> taken;
    for (const auto& [id, sp] : services) {
        const json& s = *sp;
        const json& specj = obj(s, "spec");
        std::string type = sget(specj, "type", "ClusterIP");
        if (type == "ExternalName") continue;
        std::vector<std::string> ips;
        for (const auto& c : arr(specj, "clusterIPs"))
            if (c.is_string()) ips.push_back(c.get<std::string>());
        if (ips.empty() && !sget(specj, "clusterIP").empty()) ips.push_back(sget(specj, "clusterIP"));
        if (ips.empty() || ips[0] == "None") continue;  // headless: DNS only
        std::optional<Ipv4> vip;
        std::string problem;
        for (const auto& c : ips) {
            if (c.find(':') != std::string::npos) continue;  // IPv6 ClusterIP
            auto ip = Ipv4::parse(c);
            if (!ip) problem = "invalid clusterIP '" + c + "'";
            else if (!vip) vip = *ip;
        }
        if (!problem.empty() || !vip) {
            if (problem.empty()) continue;  // IPv6-only service
            plan.problems.push_back("Service " + id + ": " + problem + ": skipped");
            continue;
        }
        bool affinity = sget(specj, "sessionAffinity", "None") == "ClientIP";
        std::string algo = sget(obj(obj(s, "metadata"), "annotations"), kLbAlgorithmAnnotation, "random");
        if (algo != "random" && algo != "maglev") {
            plan.problems.push_back("Service " + id + ": unknown " + kLbAlgorithmAnnotation + " '" + algo + "': skipped");
            continue;
        }
        uint32_t timeout = 10800;
        if (auto t = obj(obj(specj, "sessionAffinityConfig"), "clientIP").find("timeoutSeconds");
            t != obj(obj(specj, "sessionAffinityConfig"), "clientIP").end() && t->is_number_integer() &&
            t->get<long long>() > 0 && t->get<long long>() <= 86400)
            timeout = static_cast<uint32_t>(t->get<long long>());

        std::vector<ServicePort> mine;
        for (const auto& p : arr(specj, "ports")) {
            auto proto = proto_of(p);
            auto port = port_of(p, "port");
            if (!proto || !port) {
                problem = "invalid port " + p.dump();
                break;
            }
            ServicePort out;
            out.name = id + ":" + sget(p, "name");
            out.frontend = {*vip, *port, *proto};
            out.affinity = affinity;
            out.affinity_timeout = timeout;
            out.maglev = algo == "maglev";
            // Slice ports carry the resolved target port under the service
            // port's name (this is how named targetPorts resolve).
            for (const auto& se : slices[id]) {
                std::optional<uint16_t> target;
                for (const auto& [k, v] : se.ports)
                    if (k.first == sget(p, "name") && k.second == *proto) target = v;
                if (!target) continue;
                for (const auto& [ip, state] : se.addrs) {
                    if (state == 0) out.backends.push_back({ip, *target, *proto});
                    else if (state == 1) out.terminating.push_back({ip, *target, *proto});
                }
            }
            for (auto* v : {&out.backends, &out.terminating}) {
                std::sort(v->begin(), v->end());
                v->erase(std::unique(v->begin(), v->end()), v->end());
            }
            if (out.backends.size() > kMaxBackendsPerService) {
                problem = "port " + std::to_string(*port) + " has " + std::to_string(out.backends.size()) +
                          " backends, more than " + std::to_string(kMaxBackendsPerService);
                break;
            }
            // NodePort: the same backends on node IP:nodePort.
            bool exposes = type == "NodePort" || type == "LoadBalancer";
            if (exposes && node.node_ip && p.contains("nodePort")) {
                auto np = port_of(p, "nodePort");
                if (!np) {
                    problem = "invalid nodePort " + p["nodePort"].dump();
                    break;
                }
                ServicePort n = out;
                n.name += "/nodeport";
                n.frontend = {*node.node_ip, *np, *proto};
                if (sget(specj, "externalTrafficPolicy", "Cluster") == "Local") {
                    auto local = [&](const L4Addr& a) { return node.local_pod_cidr && node.local_pod_cidr->contains(a.ip); };
                    std::erase_if(n.backends, [&](const L4Addr& a) { return !local(a); });
                    std::erase_if(n.terminating, [&](const L4Addr& a) { return !local(a); });
                }
                mine.push_back(std::move(out));
                mine.push_back(std::move(n));
                continue;
            }
            mine.push_back(std::move(out));
        }
        if (!problem.empty()) {
            plan.problems.push_back("Service " + id + ": " + problem + ": skipped");
            continue;
        }
        // All of a service's frontends or none.
        std::string clash;
        std::set<L4Addr> own;
        for (const auto& sp2 : mine) {
            if (auto it = taken.find(sp2.frontend); it != taken.end())
                clash = "frontend " + sp2.frontend.str() + " is already used by " + it->second;
            else if (!own.insert(sp2.frontend).second)
                clash = "frontend " + sp2.frontend.str() + " is listed twice";
        }
        if (!clash.empty()) {
            plan.problems.push_back("Service " + id + ": " + clash + ": skipped");
            continue;
        }
        for (auto& sp2 : mine) {
            taken.emplace(sp2.frontend, id);
            plan.ports.push_back(std::move(sp2));
        }
    }
    std::sort(plan.ports.begin(), plan.ports.end(),
              [](const ServicePort& a, const ServicePort& b) { return a.frontend < b.frontend; });
    return plan;
}

}  // namespace skiff::agent
