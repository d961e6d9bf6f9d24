// Socket-level load-balancing for host processes: the sock_addr programs
// attached to a cgroup through bpf_links pinned in the node's pin dir, so
// the attachment outlives the agent and a restart swaps programs in place.
#pragma once

#include <cstdint>
#include <string>

#include "common/fd.h"
#include "common/result.h"

namespace skiff::datapath {

// cgroup_path opened, when it is a cgroup2 directory; else its unified/
// when that is one (a hybrid host's /sys/fs/cgroup).
Result<UniqueFd> open_cgroup2(const std::string& path);

// Load the programs and attach (or update) them on cgroup_path (a cgroup2
// directory, or a hybrid /sys/fs/cgroup: see open_cgroup2). Links are pinned
// as <pin_dir>/link_sock_<hook>.
Status attach_socket_lb(const std::string& pin_dir, const std::string& cgroup_path);

// The calling thread's network namespace cookie (SO_NETNS_COOKIE).
Result<uint64_t> current_netns_cookie();

}  // namespace skiff::datapath
