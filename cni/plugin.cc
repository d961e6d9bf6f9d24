// Dispatch, ADD and DEL.
#include "plugin.h"

#include <cstring>

#include "common/log.h"
#include "delegate.h"
#include "plugin_internal.h"
#include "result.h"
#include "version.h"

namespace skiff::cni {

using nlohmann::json;

namespace detail {

CniResult<NetNs> open_container_netns(const std::string& path) {
    auto ns = NetNs::open(path);
    if (!ns) {
        if (ns.error().code == ENOENT)
            return CniError{kUnknownContainer, "network namespace " + path + " does not exist", ns.error().message};
        return CniError{kInvalidEnv, "CNI_NETNS " + path + " is not a usable network namespace", ns.error().message};
    }
    auto self = NetNs::current();
    if (self && ns->same_as(*self))
        return CniError{kInvalidEnv, "CNI_NETNS " + path + " is the plugin's own network namespace", ""};
    return std::move(*ns);
}

CniResult<ipam::Allocator> builtin_ipam(Ctx& c) {
    auto a = ipam::Allocator::open(c.store.ipam_dir(), *c.conf.pod_cidr);
    if (!a) return CniError{kIoFailure, "cannot open IPAM state in " + c.store.ipam_dir(), a.error().message};
    return std::move(*a);
}

CniResult<Ipv4> ipam_add(Ctx& c, const ipam::Owner& owner) {
    if (!c.conf.delegated_ipam()) {
        auto a = builtin_ipam(c);
        if (!a) return a.error();
        auto ip = a->allocate(owner);
        if (ip) return *ip;
        const auto& e = ip.error();
        if (e.code == ENOSPC) return CniError{kTryAgain, "IP pool exhausted: " + e.message, ""};
        if (e.code == EAGAIN) return CniError{kTryAgain, "IPAM busy, try again", e.message};
        return CniError{kIoFailure, "IPAM allocation failed", e.message};
    }
    auto out = c.deps.delegate(c.conf.ipam_type(), "ADD", c.env, wire(c.conf.raw));
    if (!out) return out.error();
    auto res = parse_result(*out);
    if (!res) return res.error();
    for (const auto& ip : res->ips) {
        if (ip.address.find(':') != std::string::npos) continue;
        auto p = Ipv4Prefix::parse(ip.address, /*allow_host_bits=*/true);
        if (p) return p->addr();
    }
    // The plugin leased something we cannot use: give it back.
    (void)c.deps.delegate(c.conf.ipam_type(), "DEL", c.env, wire(c.conf.raw));
    return CniError{kInternal, "ipam plugin '" + c.conf.ipam_type() + "' returned no IPv4 address", wire(*out)};
}

CniStatus ipam_del(Ctx& c, const ipam::Owner& owner) {
    if (!c.conf.delegated_ipam()) {
        auto a = builtin_ipam(c);
        if (!a) return a.error();
        if (auto r = a->release(owner); !r) return CniError{kIoFailure, "IPAM release failed", r.error().message};
        return {};
    }
    auto out = c.deps.delegate(c.conf.ipam_type(), "DEL", c.env, wire(c.conf.raw));
    if (!out) return out.error();
    return {};
}

namespace {

// Deletes the (already down) host veth in Deps::background. By ifindex: an
// ADD of the same attachment may have created a new veth of that name by
// the time the job runs. Called last, when DEL holds no lock (a forked
// job would keep it).
void delete_in_background(Ctx& c, const std::string& veth, int ifindex) {
    // By value: the job may outlive this command (and c).
    std::function<void()> job = [pn = c.deps.pod_network, veth, ifindex] {
        if (auto s = pn->teardown(ifindex); !s)
            log::warn("cannot remove " + veth + " (#" + std::to_string(ifindex) + "): " + s.error().message);
    };
#ifdef SKIFF_TEST_HOOKS
    if (c.deps.fault)
        job = [fault = c.deps.fault, remove = std::move(job)] {
            (void)fault("background-delete");
            remove();
        };
#endif
    if (!c.deps.background) {
        job();
        return;
    }
    if (auto s = c.deps.background(job); !s) {
        log::warn("cannot remove " + veth + " in the background, removing it now: " + s.error().message);
        job();
    }
}

// Until that background deletion is done, the pod end of the veth still
// holds the pod's ifname, so an ADD of the same attachment right after its
// DEL deletes the veth itself. Only a veth that is down (a DEL's, or a
// killed ADD's): a live attachment stays, and ADD fails as it must.
// Returns true if it deleted one.
bool clear_retired_veth(Ctx& c, const std::string& veth) {
    auto host = c.deps.pod_network->host_side(veth);
    if (!host || host->host_up) return false;
    if (auto s = c.deps.pod_network->teardown(veth); !s) {
        log::warn("cannot remove " + veth + " left by an earlier DEL: " + s.error().message);
        return false;
    }
    return true;
}

}  // namespace

CniStatus release_attachment(Ctx& c, const std::string& cid, const std::string& ifname, std::optional<Ipv4> ip_hint,
                             VethRemoval veth_removal) {
    std::optional<CniError> first_err;
    auto note = [&](CniError e) {
        log::warn("release " + cid + "/" + ifname + ": " + e.msg + (e.details.empty() ? "" : " (" + e.details + ")"));
        if (!first_err) first_err = std::move(e);
    };
    const ipam::Owner owner{cid, ifname};
    std::optional<Ipv4> ip = ip_hint;
    if (auto st = c.store.load(cid, ifname); st && *st && !(*st)->ip.empty())
        if (auto p = Ipv4::parse((*st)->ip)) ip = *p;
    if (!ip && !c.conf.delegated_ipam()) {
        if (auto a = builtin_ipam(c); a)
            if (auto leases = a->leases(); leases)
                for (const auto& [lip, o] : *leases)
                    if (o == owner) ip = lip;
    }

    const std::string veth = host_veth_name(c.conf.name, cid, ifname);
    auto host = c.deps.pod_network->host_side(veth);
    if (ip) {
        auto dp = c.deps.datapath(c.conf.pin_path);
        auto entry = dp->lookup_endpoint(*ip);
        if (entry && *entry) {
            // Only our own entry: the one behind our veth, or a stale one
            // whose device is gone.
            bool ours = host ? (*entry)->ifindex == static_cast<uint32_t>(host->host_ifindex)
                             : !c.deps.pod_network->link_exists(static_cast<int>((*entry)->ifindex)).value_or(true);
            if (ours)
                if (auto s = dp->delete_endpoint(*ip); !s)
                    note(CniError{kInternal, "cannot remove endpoint " + ip->str(), s.error().message});
        }
    }
    // The veth: gone already (e.g. with the pod's netns), out of service now
    // and deleted after DEL returned, or deleted now.
    std::optional<int> retired;
    bool veth_done = !host && host.error().code == ENODEV;
    if (host && veth_removal == VethRemoval::Background) {
        auto s = c.deps.pod_network->set_down(host->host_ifindex);
        if (s) retired = host->host_ifindex;
        veth_done = s || s.error().code == ENODEV;
    }
    if (!veth_done)
        if (auto s = c.deps.pod_network->teardown(veth); !s)
            note(CniError{kInternal, "cannot remove " + veth, s.error().message});
    if (auto s = ipam_del(c, owner); !s) note(s.error());
    if (auto s = c.store.remove(cid, ifname); !s)
        note(CniError{kIoFailure, "cannot remove attachment state", s.error().message});
    if (retired) delete_in_background(c, veth, *retired);
    if (first_err) return *first_err;
    return {};
}

CniResult<json> cmd_add(Ctx& c) {
    const auto& env = c.env;
    const auto& conf = c.conf;
    CniResultModel prev;
    if (!conf.prev_result.is_null()) {
        auto p = parse_result(conf.prev_result);
        if (!p) return p.error();
        prev = std::move(*p);
    }
    auto ns = open_container_netns(env.netns);
    if (!ns) return ns.error();
    const std::string veth = host_veth_name(conf.name, env.container_id, env.ifname);
    auto exists = c.deps.pod_network->ifname_exists(*ns, env.ifname);
    if (exists && *exists && clear_retired_veth(c, veth)) exists = c.deps.pod_network->ifname_exists(*ns, env.ifname);
    if (!exists) return CniError{kInternal, "cannot inspect " + env.netns, exists.error().message};
    if (*exists) return CniError{kInvalidEnv, "interface " + env.ifname + " already exists in " + env.netns, ""};

    const ipam::Owner owner{env.container_id, env.ifname};
    auto ip = ipam_add(c, owner);
    if (!ip) return ip.error();

    AttachmentState st{env.container_id,
                       env.ifname,
                       env.netns,
                       veth,
                       ip->str(),
                       conf.delegated_ipam(),
                       env.arg("K8S_POD_NAMESPACE"),
                       env.arg("K8S_POD_NAME"),
                       env.arg("K8S_POD_UID"),
                       "adding"};
    auto fail = [&](CniError e) -> CniResult<json> {
        log::warn("ADD " + env.container_id + "/" + env.ifname + " failed, rolling back: " + e.msg);
        (void)release_attachment(c, env.container_id, env.ifname, *ip);
        return e;
    };
    if (c.fault("after-ipam")) return fail(CniError{kInternal, "fault injected at after-ipam", ""});
    auto dp = c.deps.datapath(conf.pin_path);
    if (auto s = dp->ensure_loaded(); !s)
        return fail(CniError{kInternal, "cannot load the skiff datapath in " + conf.pin_path, s.error().message});
    if (auto s = c.store.save(st); !s)
        return fail(CniError{kIoFailure, "cannot write attachment state", s.error().message});

    PodSpec spec{veth, host_veth_alias(conf.name, env.container_id, env.ifname), env.ifname, *ip, conf.mtu};
    auto links = c.deps.pod_network->setup(*ns, spec);
    if (!links) return fail(CniError{kInternal, "cannot set up the pod interface", links.error().message});
    if (c.fault("after-veth")) return fail(CniError{kInternal, "fault injected at after-veth", ""});
    if (auto s = dp->attach_pod(links->host_ifindex); !s)
        return fail(CniError{kInternal, "cannot attach the datapath to " + veth, s.error().message});
    if (c.fault("after-attach")) return fail(CniError{kInternal, "fault injected at after-attach", ""});

    skiff_endpoint_info info{};
    info.ifindex = static_cast<uint32_t>(links->host_ifindex);
    info.flags = SKIFF_EP_F_LOCAL;
    std::memcpy(info.pod_mac, links->pod_mac.data(), 6);
    std::memcpy(info.host_mac, links->host_mac.data(), 6);
    if (auto s = dp->upsert_endpoint(*ip, info); !s)
        return fail(CniError{kInternal, "cannot write the endpoint entry", s.error().message});
    if (c.fault("after-endpoint")) return fail(CniError{kInternal, "fault injected at after-endpoint", ""});

    st.phase = "ready";
    if (auto s = c.store.save(st); !s)
        return fail(CniError{kIoFailure, "cannot write attachment state", s.error().message});

    CniResultModel ours;
    ours.interfaces.push_back({veth, mac_str(links->host_mac), static_cast<int>(conf.mtu), ""});
    ours.interfaces.push_back({env.ifname, mac_str(links->pod_mac), static_cast<int>(conf.mtu), env.netns});
    ours.ips.push_back({ip->str() + "/32", kPodGateway.str(), 1});
    ours.routes.push_back({"0.0.0.0/0", kPodGateway.str(), {}, {}, {}, {}, {}});
    if (conf.dns.is_object()) ours.dns = conf.dns;
    log::info("ADD " + env.container_id + "/" + env.ifname + " -> " + ip->str() + " via " + veth);
    return result_to_json(merge_results(std::move(prev), ours), conf.cni_version);
}

CniStatus cmd_del(Ctx& c) {
    std::optional<Ipv4> hint;
    if (!c.conf.prev_result.is_null())
        if (auto p = parse_result(c.conf.prev_result); p)
            for (const auto& ipc : p->ips)
                if (auto pfx = Ipv4Prefix::parse(ipc.address, true); pfx) hint = pfx->addr();
    auto r = release_attachment(c, c.env.container_id, c.env.ifname, hint, VethRemoval::Background);
    if (r) log::info("DEL " + c.env.container_id + "/" + c.env.ifname);
    return r;
}

}  // namespace detail

namespace {

PluginOutput emit_error(const CniError& e, const std::string& version) {
    log::error(e.msg + (e.details.empty() ? "" : " (" + e.details + ")"));
    // Non-zero exit; the code itself travels in the JSON.
    int rc = (e.code >= 1 && e.code <= 255) ? e.code : 1;
    return PluginOutput{rc, wire(error_to_json(e, version)) + "\n"};
}

// In the config's version when it names a supported one, else the latest.
PluginOutput cmd_version(const StdinConfig& in) {
    const std::string version = in.version.empty() ? std::string(kLatestVersion) : in.version;
    if (in.present && !in.decoded) return emit_error(in.decoded.error(), version);
    json out = {{"cniVersion", version}, {"supportedVersions", json::array()}};
    for (auto v : kSupportedVersions) out["supportedVersions"].push_back(std::string(v));
    return PluginOutput{0, wire(out) + "\n"};
}

bool command_allowed(Command cmd, const std::string& version) {
    switch (cmd) {
        case Command::Check: return version_at_least(version, "0.4.0");
        case Command::Gc:
        case Command::Status: return version_at_least(version, "1.1.0");
        default: return true;
    }
}

// What the request may not do before any work starts: every check that
// looks outside the config itself. Code 7: the config asks for it.
CniStatus check_request(const NetConf& conf, Deps& deps) {
    if (deps.is_stdout && !conf.log_file.empty() && deps.is_stdout(conf.log_file))
        return CniError{
            kInvalidConfig,
            "network config: 'logFile' " + conf.log_file + " is the plugin's stdout, which carries the result alone",
            ""};
    if (auto p = deps.pin_dir_problem ? deps.pin_dir_problem(conf.pin_path) : ""; !p.empty())
        return CniError{kInvalidConfig, "network config: 'pinPath': " + p, ""};
    return {};
}

PluginOutput run_checked(const Getenv& getenv, const StdinConfig& in, Deps& deps) {
    if (!deps.delegate) deps.delegate = delegate;
    // Errors answer in the config's version when it is readable and supported.
    auto env = parse_env(getenv);
    if (!env) return emit_error(env.error(), in.version);
    if (env->command == Command::Version) return cmd_version(in);
    if (const char* by = getenv(kDelegationMarker); by && *by)
        return emit_error(CniError{kInvalidConfig,
                                   "delegation loop: skiff was run as an IPAM plugin by a chain that "
                                   "skiff itself started (" +
                                       std::string(by) + ")",
                                   ""},
                          in.version);

    auto conf = parse_netconf(in);
    if (!conf) return emit_error(conf.error(), in.version);
    if (!command_allowed(env->command, conf->cni_version))
        return emit_error(CniError{kIncompatibleVersion,
                                   env->command_name + " is not supported in CNI version " + conf->cni_version, ""},
                          conf->cni_version);
    if (auto s = check_request(*conf, deps); !s) return emit_error(s.error(), conf->cni_version);
    if (!conf->log_file.empty()) log::set_file(conf->log_file);

    detail::Ctx ctx(*env, *conf, deps);
    CniStatus st;
    switch (env->command) {
        case Command::Add: {
            auto r = detail::cmd_add(ctx);
            if (!r) return emit_error(r.error(), conf->cni_version);
            return PluginOutput{0, wire(*r) + "\n"};
        }
        case Command::Del: st = detail::cmd_del(ctx); break;
        case Command::Check: st = detail::cmd_check(ctx); break;
        case Command::Gc: st = detail::cmd_gc(ctx); break;
        case Command::Status: st = detail::cmd_status(ctx); break;
        case Command::Version: break;
    }
    if (!st) return emit_error(st.error(), conf->cni_version);
    return PluginOutput{0, ""};
}

}  // namespace

PluginOutput run_plugin(const Getenv& getenv, const std::string& stdin_text, Deps& deps) {
    // Whatever happens, the runtime gets one error object and an exit code.
    try {
        // stdin is decoded once, here; everything after works on the result.
        return run_checked(getenv, decode_stdin(stdin_text), deps);
    } catch (const std::exception& e) {
        return emit_error(CniError{kInternal, "internal error", e.what()}, "");
    } catch (...) {
        return emit_error(CniError{kInternal, "internal error", "unknown exception"}, "");
    }
}

}  // namespace skiff::cni
