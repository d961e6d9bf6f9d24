// Attaching programs to a device's clsact hooks (libbpf 1.1 has no tcx
// attach helper; clsact filters also outlive the attaching process).
#pragma once

#include <cstdint>

#include "common/result.h"

namespace skiff::datapath {

enum class TcHook { Ingress, Egress };

// Create clsact if needed and attach (or replace) our filter: handle 1, prio 1.
Status tc_attach(int ifindex, TcHook hook, int prog_fd);
// Program id of our filter on the hook, 0 when none is attached.
Result<uint32_t> tc_attached_id(int ifindex, TcHook hook);
Status tc_detach(int ifindex, TcHook hook);  // ENOENT when absent

Result<uint32_t> prog_id_of(int prog_fd);

}  // namespace skiff::datapath
