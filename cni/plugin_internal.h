// Shared between the command implementations (plugin.cc, plugin_ops.cc).
#pragma once

#include <optional>
#include <string>

#include "config.h"
#include "ipam/allocator.h"
#include "plugin.h"
#include "state.h"

namespace skiff::cni::detail {

struct Ctx {
    const Env& env;
    const NetConf& conf;
    Deps& deps;
    StateStore store;

    Ctx(const Env& e, const NetConf& c, Deps& d) : env(e), conf(c), deps(d), store(c.state_dir, c.name) {}
    // Always false without SKIFF_TEST_HOOKS: the fault points compile away.
    bool fault([[maybe_unused]] const char* point) const {
#ifdef SKIFF_TEST_HOOKS
        return deps.fault && deps.fault(point);
#else
        return false;
#endif
    }
};

CniResult<Ipv4> ipam_add(Ctx& c, const ipam::Owner& owner);
// Releases owner's address; ip (when known) serves delegated IPAM logs only.
CniStatus ipam_del(Ctx& c, const ipam::Owner& owner);
CniResult<ipam::Allocator> builtin_ipam(Ctx& c);

// Now: the host veth is gone when release_attachment() returns.
// Background: it is down (no routes, no neighbour, no carrier) when it
// returns, and deleted in Deps::background, off DEL's critical path.
enum class VethRemoval { Now, Background };

// Everything DEL removes for one attachment, continuing past errors.
CniStatus release_attachment(Ctx& c, const std::string& cid, const std::string& ifname, std::optional<Ipv4> ip_hint,
                             VethRemoval veth_removal = VethRemoval::Now);

CniResult<NetNs> open_container_netns(const std::string& path);

CniResult<nlohmann::json> cmd_add(Ctx& c);
CniStatus cmd_del(Ctx& c);
CniStatus cmd_check(Ctx& c);
CniStatus cmd_gc(Ctx& c);
CniStatus cmd_status(Ctx& c);

}  // namespace skiff::cni::detail
