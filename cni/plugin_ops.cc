// CHECK, GC and STATUS.
#include <cstring>
#include <set>

#include "common/log.h"
#include "plugin_internal.h"
#include "result.h"

namespace skiff::cni::detail {

using nlohmann::json;

CniStatus cmd_check(Ctx& c) {
    const auto& env = c.env;
    if (c.conf.prev_result.is_null())
        return CniError{kInvalidConfig, "CHECK needs prevResult in the network config", ""};
    auto prev = parse_result(c.conf.prev_result);
    if (!prev) return prev.error();
    auto st = c.store.load(env.container_id, env.ifname);
    if (!st) return CniError{kIoFailure, "cannot read attachment state", st.error().message};
    if (!*st) return CniError{kInternal, "no skiff attachment for " + env.container_id + "/" + env.ifname, ""};
    const auto& a = **st;
    if (a.phase != "ready") return CniError{kInternal, "attachment is incomplete (ADD did not finish)", ""};
    auto ip = Ipv4::parse(a.ip);
    if (!ip) return CniError{kIoFailure, "attachment state has a bad IP", a.ip};

    bool in_prev = false;
    for (const auto& i : prev->ips)
        if (auto p = Ipv4Prefix::parse(i.address, true); p && p->addr() == *ip) in_prev = true;
    if (!in_prev) return CniError{kInternal, "prevResult does not list " + a.ip, ""};

    auto ns = open_container_netns(env.netns);
    if (!ns) return ns.error();
    PodSpec spec{a.host_veth, "", env.ifname, *ip, c.conf.mtu};
    if (auto s = c.deps.pod_network->verify(*ns, spec); !s)
        return CniError{kInternal, "pod plumbing is broken", s.error().message};
    auto host = c.deps.pod_network->host_side(a.host_veth);
    if (!host) return CniError{kInternal, "host veth missing", host.error().message};

    auto dp = c.deps.datapath(c.conf.pin_path);
    auto attached = dp->pod_attached(host->host_ifindex);
    if (!attached) return CniError{kInternal, "cannot query the datapath", attached.error().message};
    if (!*attached) return CniError{kInternal, "skiff program is not attached to " + a.host_veth, ""};
    auto entry = dp->lookup_endpoint(*ip);
    if (!entry) return CniError{kInternal, "cannot read the endpoint map", entry.error().message};
    if (!*entry) return CniError{kInternal, "endpoint entry for " + a.ip + " is missing", ""};
    if ((*entry)->ifindex != static_cast<uint32_t>(host->host_ifindex) ||
        std::memcmp((*entry)->host_mac, host->host_mac.data(), 6) != 0)
        return CniError{kInternal, "endpoint entry for " + a.ip + " does not match " + a.host_veth, ""};
    return {};
}

CniStatus cmd_gc(Ctx& c) {
    std::set<std::pair<std::string, std::string>> valid;
    for (const auto& v : c.conf.valid_attachments) valid.emplace(v.container_id, v.ifname);
    std::optional<CniError> first_err;
    auto note = [&](const CniError& e) {
        log::warn("GC: " + e.msg + (e.details.empty() ? "" : " (" + e.details + ")"));
        if (!first_err) first_err = e;
    };

    // 1. Attachments we recorded.
    if (auto list = c.store.list(); list) {
        for (const auto& a : *list) {
            if (valid.count({a.container_id, a.ifname})) continue;
            log::info("GC: releasing stale attachment " + a.container_id + "/" + a.ifname);
            if (auto s = release_attachment(c, a.container_id, a.ifname, std::nullopt); !s) note(s.error());
        }
    } else {
        note(CniError{kIoFailure, "cannot list attachments", list.error().message});
    }

    // 2. Host veths of this network without a valid attachment (an ADD
    //    killed before it wrote state).
    const std::string prefix = host_veth_alias_prefix(c.conf.name);
    if (auto veths = c.deps.pod_network->host_veths(prefix); veths) {
        for (const auto& [name, alias] : *veths) {
            auto rest = alias.substr(prefix.size());
            auto slash = rest.rfind('/');
            if (slash == std::string::npos) continue;
            if (valid.count({rest.substr(0, slash), rest.substr(slash + 1)})) continue;
            if (auto s = c.deps.pod_network->teardown(name); !s)
                note(CniError{kInternal, "cannot remove " + name, s.error().message});
        }
    } else {
        note(CniError{kInternal, "cannot list links", veths.error().message});
    }

    if (!c.conf.delegated_ipam()) {
        // 3. Leases whose owner is not valid, and 4. endpoint entries in our
        //    PodCIDR without a lease.
        auto alloc = builtin_ipam(c);
        if (!alloc) return first_err ? *first_err : alloc.error();
        auto leases = alloc->leases();
        if (!leases) return CniError{kIoFailure, "cannot list leases", leases.error().message};
        std::set<Ipv4> kept;
        for (const auto& [ip, o] : *leases) {
            if (valid.count({o.container_id, o.ifname})) {
                kept.insert(ip);
                continue;
            }
            if (auto s = alloc->release_ip(ip); !s)
                note(CniError{kIoFailure, "cannot release " + ip.str(), s.error().message});
        }
        auto dp = c.deps.datapath(c.conf.pin_path);
        if (auto eps = dp->list_endpoints(); eps) {
            for (const auto& [ip, info] : *eps)
                if (c.conf.pod_cidr->contains(ip) && !kept.count(ip)) (void)dp->delete_endpoint(ip);
        }
    } else {
        // Let the IPAM plugin collect too; older plugins may not know GC.
        if (auto r = c.deps.delegate(c.conf.ipam_type(), "GC", c.env, wire(c.conf.raw)); !r)
            log::warn("GC: ipam plugin: " + r.error().msg);
    }
    if (first_err) return *first_err;
    return {};
}

CniStatus cmd_status(Ctx& c) {
    auto dp = c.deps.datapath(c.conf.pin_path);
    if (auto s = dp->ensure_loaded(); !s)
        return CniError{kNotAvailable, "skiff datapath is not available", s.error().message};
    if (c.conf.require_agent && c.conf.pod_cidr) {
        auto local = dp->node_cidr_is_local(*c.conf.pod_cidr);
        if (!local || !*local)
            return CniError{kNotAvailable,
                            "PodCIDR " + c.conf.pod_cidr->str() + " is not programmed by skiff-agent yet",
                            local ? "" : local.error().message};
    }
    if (!c.conf.delegated_ipam()) {
        auto alloc = builtin_ipam(c);
        if (!alloc) return CniError{kNotAvailable, alloc.error().msg, alloc.error().details};
        auto leases = alloc->leases();
        if (!leases) return CniError{kNotAvailable, "cannot read IPAM state", leases.error().message};
        uint64_t used = 0;
        for (const auto& [ip, o] : *leases) used += (ip >= alloc->first() && ip <= alloc->last()) ? 1 : 0;
        if (used >= alloc->capacity())
            return CniError{kNotAvailable, "IP pool " + c.conf.pod_cidr->str() + " is exhausted", ""};
    }
    return {};
}

}  // namespace skiff::cni::detail
