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

using detail::SliceEndpoints;

// One EndpointSlice: the service it belongs to and its endpoints (none for
// the IPv6 half of a dual-stack service), or why it is skipped.
struct ParsedSlice {
    std::string service;
    std::optional<SliceEndpoints> eps;
    std::string problem;
};

ParsedSlice parse_slice(const json& s) {
    ParsedSlice out;
    const json& meta = obj(s, "metadata");
    std::string svc = sget(obj(meta, "labels"), "kubernetes.io/service-name");
    std::string ns = sget(meta, "namespace", "default");
    std::string what = "EndpointSlice " + ns + "/" + sget(meta, "name", "?");
    if (svc.empty()) {
        out.problem = what + ": no kubernetes.io/service-name label: skipped";
        return out;
    }
    out.service = ns + "/" + svc;
    if (sget(s, "addressType", "IPv4") != "IPv4") return out;  // the IPv6 half of dual-stack
    SliceEndpoints se;
    for (const auto& p : arr(s, "ports")) {
        auto proto = proto_of(p);
        auto port = port_of(p, "port");
        if (!proto || !port) {
            out.problem = what + ": invalid port " + p.dump() + ": skipped";
            return out;
        }
        se.ports.push_back({{sget(p, "name"), *proto}, *port});
    }
    for (const auto& e : arr(s, "endpoints")) {
        const json& addrs = arr(e, "addresses");
        if (addrs.empty() || !addrs[0].is_string()) continue;
        auto ip = Ipv4::parse(addrs[0].get<std::string>());
        if (!ip) {
            out.problem = what + ": invalid address " + addrs[0].dump() + ": skipped";
            return out;
        }
        // Kubernetes: an unknown "ready" counts as ready.
        bool ready = cond(e, "ready", true), serving = cond(e, "serving", ready);
        bool terminating = cond(e, "terminating", false);
        se.addrs.emplace_back(*ip, ready && !terminating ? 0 : (serving ? 1 : 2));
    }
    out.eps = std::move(se);
    return out;
}

struct PlannedService {
    std::vector<ServicePort> ports;  // empty: nothing to program (headless, ExternalName, IPv6)
    std::string problem;             // set: skipped whole
};

// One Service's frontends with their backends, before clashes with other
// services are settled.
PlannedService plan_one(const std::string& id, const json& s, const std::vector<const SliceEndpoints*>& slices,
                        const NodeContext& node) {
    PlannedService out;
    auto skip = [&](const std::string& why) {
        out.ports.clear();
        out.problem = "Service " + id + ": " + why + ": skipped";
        return out;
    };
    const json& specj = obj(s, "spec");
    std::string type = sget(specj, "type", "ClusterIP");
    if (type == "ExternalName") return out;
    std::vector<std::string> ips;
    for (const auto& c : arr(specj, "clusterIPs"))
        if (c.is_string()) ips.push_back(c.get<std::string>());
    if (ips.empty() && !sget(specj, "clusterIP").empty()) ips.push_back(sget(specj, "clusterIP"));
    if (ips.empty() || ips[0] == "None") return out;  // headless: DNS only
    std::optional<Ipv4> vip;
    for (const auto& c : ips) {
        if (c.find(':') != std::string::npos) continue;  // IPv6 ClusterIP
        auto ip = Ipv4::parse(c);
        if (!ip) return skip("invalid clusterIP '" + c + "'");
        if (!vip) vip = *ip;
    }
    if (!vip) return out;  // IPv6-only service
    bool affinity = sget(specj, "sessionAffinity", "None") == "ClientIP";
    std::string algo = sget(obj(obj(s, "metadata"), "annotations"), kLbAlgorithmAnnotation, "random");
    if (algo != "random" && algo != "maglev")
        return skip(std::string("unknown ") + kLbAlgorithmAnnotation + " '" + algo + "'");
    uint32_t timeout = 10800;
    const json& cip = obj(obj(specj, "sessionAffinityConfig"), "clientIP");
    if (auto t = cip.find("timeoutSeconds");
        t != cip.end() && t->is_number_integer() && t->get<long long>() > 0 && t->get<long long>() <= 86400)
        timeout = static_cast<uint32_t>(t->get<long long>());

    for (const auto& p : arr(specj, "ports")) {
        auto proto = proto_of(p);
        auto port = port_of(p, "port");
        if (!proto || !port) return skip("invalid port " + p.dump());
        ServicePort sp;
        sp.name = id + ":" + sget(p, "name");
        sp.frontend = {*vip, *port, *proto};
        sp.affinity = affinity;
        sp.affinity_timeout = timeout;
        sp.maglev = algo == "maglev";
        // Slice ports carry the resolved target port under the service
        // port's name (this is how named targetPorts resolve).
        for (const SliceEndpoints* se : slices) {
            std::optional<uint16_t> target;
            for (const auto& [k, v] : se->ports)
                if (k.first == sget(p, "name") && k.second == *proto) target = v;
            if (!target) continue;
            for (const auto& [ip, state] : se->addrs) {
                if (state == 0)
                    sp.backends.push_back({ip, *target, *proto});
                else if (state == 1)
                    sp.terminating.push_back({ip, *target, *proto});
            }
        }
        for (auto* v : {&sp.backends, &sp.terminating}) {
            std::sort(v->begin(), v->end());
            v->erase(std::unique(v->begin(), v->end()), v->end());
        }
        if (sp.backends.size() > kMaxBackendsPerService)
            return skip("port " + std::to_string(*port) + " has " + std::to_string(sp.backends.size()) +
                        " backends, more than " + std::to_string(kMaxBackendsPerService));
        // NodePort: the same backends on node IP:nodePort.
        bool exposes = type == "NodePort" || type == "LoadBalancer";
        if (exposes && node.node_ip && p.contains("nodePort")) {
            auto np = port_of(p, "nodePort");
            if (!np) return skip("invalid nodePort " + p["nodePort"].dump());
            ServicePort n = sp;
            n.name += "/nodeport";
            n.frontend = {*node.node_ip, *np, *proto};
            if (sget(specj, "externalTrafficPolicy", "Cluster") == "Local") {
                auto remote = [&](const L4Addr& a) {
                    return !node.local_pod_cidr || !node.local_pod_cidr->contains(a.ip);
                };
                std::erase_if(n.backends, remote);
                std::erase_if(n.terminating, remote);
            }
            out.ports.push_back(std::move(sp));
            out.ports.push_back(std::move(n));
            continue;
        }
        out.ports.push_back(std::move(sp));
    }
    std::set<L4Addr> own;
    for (const auto& sp : out.ports)
        if (!own.insert(sp.frontend).second) return skip("frontend " + sp.frontend.str() + " is listed twice");
    return out;
}

}  // namespace

PlanDelta ServicePlanner::update(const ClusterSpec& spec, const NodeContext& node) {
    std::set<std::string> dirty;
    if (!node_ || !(*node_ == node)) {  // NodePorts depend on the node: everything again
        for (const auto& [id, c] : services_) dirty.insert(id);
        for (const auto& [id, o] : spec.services) dirty.insert(id);
    }
    node_ = node;
    auto slice_changed = [&](const std::string& key, const ObjectRef* now) {
        if (auto it = slices_.find(key); it != slices_.end()) {
            if (!it->second.service.empty()) {
                dirty.insert(it->second.service);
                auto of = slices_of_.find(it->second.service);
                of->second.erase(key);
                if (of->second.empty()) slices_of_.erase(of);
            }
            slices_.erase(it);
            slice_problems_.erase(key);
        }
        if (!now) return;
        ParsedSlice ps = parse_slice(**now);
        if (!ps.problem.empty()) slice_problems_[key] = ps.problem;
        if (!ps.service.empty()) {
            dirty.insert(ps.service);
            slices_of_[ps.service].insert(key);
        }
        slices_.emplace(key, Slice{*now, std::move(ps.service), std::move(ps.eps)});
    };
    // The keys that may have changed: the source's list when it is against
    // the snapshot planned last, else found by comparing pointers.
    std::set<std::string> slice_keys, service_keys;
    if (spec.changes && generation_ != 0 && spec.changes->since == generation_) {
        slice_keys = spec.changes->endpoint_slices;
        service_keys = spec.changes->services;
    } else {
        auto obj = [](const auto& v) { return v.obj; };
        changed_keys(slices_, spec.endpoint_slices, obj, slice_keys);
        changed_keys(services_, spec.services, obj, service_keys);
    }
    for (const auto& key : slice_keys) {
        const ObjectRef* now = spec.endpoint_slices.find(key);
        auto it = slices_.find(key);
        if (it == slices_.end() ? now != nullptr : !now || it->second.obj != *now) slice_changed(key, now);
    }
    dirty.insert(service_keys.begin(), service_keys.end());
    generation_ = spec.generation;
    PlanDelta d;
    if (!dirty.empty()) replan(spec, dirty, d);
    return d;
}

void ServicePlanner::replan(const ClusterSpec& spec, const std::set<std::string>& dirty, PlanDelta& d) {
    // Re-plan the changed services, moving their claims on frontends.
    std::set<L4Addr> seen;
    std::vector<L4Addr> todo;
    auto visit = [&](const L4Addr& fe) {
        if (seen.insert(fe).second) todo.push_back(fe);
    };
    for (const auto& id : dirty) {
        if (auto it = services_.find(id); it != services_.end()) {
            if (it->second.problem.empty())
                for (const auto& sp : it->second.ports) {
                    if (auto c = claims_.find(sp.frontend); c != claims_.end()) {
                        c->second.erase(id);
                        if (c->second.empty()) claims_.erase(c);
                    }
                    visit(sp.frontend);
                }
            services_.erase(it);
            problem_services_.erase(id);
        }
        const ObjectRef* o = spec.services.find(id);
        if (!o) continue;
        std::vector<const SliceEndpoints*> eps;
        if (auto of = slices_of_.find(id); of != slices_of_.end())
            for (const auto& key : of->second)
                if (const auto& sl = slices_.at(key); sl.eps) eps.push_back(&*sl.eps);
        PlannedService ps = plan_one(id, **o, eps, *node_);
        Candidate c{*o, std::move(ps.ports), std::move(ps.problem), creation_time(**o)};
        for (const auto& sp : c.ports) {
            claims_[sp.frontend].insert(id);
            visit(sp.frontend);
        }
        if (!c.problem.empty()) problem_services_.insert(id);
        services_.emplace(id, std::move(c));
    }
    // Who wins a frontend depends only on the services claiming it, and
    // theirs on the services claiming their other frontends: settle that
    // connected group again, and nothing else.
    std::set<std::string> group(dirty.begin(), dirty.end());
    while (!todo.empty()) {
        L4Addr fe = todo.back();
        todo.pop_back();
        auto c = claims_.find(fe);
        if (c == claims_.end()) continue;
        for (const auto& id : c->second)
            if (group.insert(id).second)
                for (const auto& sp : services_.at(id).ports) visit(sp.frontend);
    }
    std::map<L4Addr, ServicePort> before;
    FrontendOwners held;  // who held each of these frontends before this pass
    for (const auto& fe : seen) {
        if (auto n = out_.extract(fe); !n.empty()) before.emplace(fe, std::move(n.mapped()));
        if (auto o = owner_.extract(fe); !o.empty())
            held.emplace(fe, std::move(o.mapped()));
        else if (auto sd = seed_.find(fe); sd != seed_.end())
            held.emplace(fe, sd->second);
    }
    seed_.clear();
    // A service gets all its frontends or none. Those holding what they
    // claim go first, then the older, then namespace/name: a newcomer
    // cannot take over a live service's frontend.
    struct Rank {
        int tier;  // 0: holds all it claims, 1: some, 2: none
        const Candidate* c;
        const std::string* id;
    };
    std::vector<Rank> order;
    for (const auto& id : group) {
        clashes_.erase(id);
        auto it = services_.find(id);
        if (it == services_.end() || !it->second.problem.empty()) continue;
        size_t holds = 0;
        for (const auto& sp : it->second.ports)
            if (auto h = held.find(sp.frontend); h != held.end() && h->second == id) ++holds;
        int tier = holds == 0 ? 2 : holds == it->second.ports.size() ? 0 : 1;
        order.push_back({tier, &it->second, &it->first});
    }
    auto older = [](const std::optional<int64_t>& a, const std::optional<int64_t>& b) {
        return a && (!b || *a < *b);  // one without a timestamp comes after
    };
    std::sort(order.begin(), order.end(), [&](const Rank& a, const Rank& b) {
        if (a.tier != b.tier) return a.tier < b.tier;
        if (older(a.c->created, b.c->created) || older(b.c->created, a.c->created))
            return older(a.c->created, b.c->created);
        return *a.id < *b.id;
    });
    std::vector<const Rank*> losers;
    for (const auto& r : order) {
        bool taken = false;
        for (const auto& sp : r.c->ports) taken = taken || owner_.count(sp.frontend);
        if (taken) {
            losers.push_back(&r);
            continue;
        }
        for (const auto& sp : r.c->ports) {
            owner_[sp.frontend] = *r.id;
            out_[sp.frontend] = sp;
        }
    }
    // Reported against the final owners (the same whatever order settled
    // them): the first of its frontends another service holds, and why.
    for (const Rank* r : losers) {
        for (const auto& sp : r->c->ports) {
            auto o = owner_.find(sp.frontend);
            if (o == owner_.end()) continue;
            const Candidate& w = services_.at(o->second);
            const char* why = older(w.created, r->c->created)                          ? "which is older"
                              : !older(r->c->created, w.created) && o->second < *r->id ? "which comes first by name"
                                                                                       : "which holds it";
            clashes_[*r->id] = "Service " + *r->id + ": frontend " + sp.frontend.str() + " is already used by " +
                               o->second + ", " + why + ": skipped";
            break;
        }
    }
    for (const auto& fe : seen) {
        auto now = out_.find(fe);
        auto was = before.find(fe);
        if (now == out_.end()) {
            if (was != before.end()) d.removed.push_back(fe);
        } else if (was == before.end() || !(was->second == now->second)) {
            d.upserts.push_back(now->second);
        }
    }
}

std::vector<std::string> ServicePlanner::problems() const {
    std::vector<std::string> out;
    for (const auto& [k, p] : slice_problems_) out.push_back(p);
    std::map<std::string, const std::string*> svc;
    for (const auto& [id, p] : clashes_) svc[id] = &p;
    for (const auto& id : problem_services_) svc[id] = &services_.at(id).problem;
    for (const auto& [id, p] : svc) out.push_back(*p);
    return out;
}

ServicePlan ServicePlanner::plan() const {
    ServicePlan p;
    p.ports.reserve(out_.size());
    for (const auto& [fe, sp] : out_) p.ports.push_back(sp);
    p.problems = problems();
    return p;
}

ServicePlan plan_services(const ClusterSpec& spec, const NodeContext& node, const FrontendOwners& held) {
    ServicePlanner planner(held);
    planner.update(spec, node);
    return planner.plan();
}

}  // namespace skiff::agent
