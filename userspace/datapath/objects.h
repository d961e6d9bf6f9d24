// The BPF objects compiled into this binary (embedded skeletons), and how to
// load one program against the maps pinned in a node's pin directory.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.h"
#include "common/result.h"

namespace skiff::datapath {

enum class Program {
    FromPod,     // tc ingress on a pod's host veth (bpf/from_pod.c)
    FromUplink,  // tc ingress on the node's uplink (bpf/from_uplink.c)
    ToUplink,    // tc egress on the node's uplink (bpf/to_uplink.c)
    FromTunnel,  // tc ingress on the node's VXLAN device (bpf/from_tunnel.c)
    ToTunnel,    // tc egress on the node's VXLAN device (bpf/to_tunnel.c)
};

struct ObjectBytes {
    const void* data = nullptr;
    size_t size = 0;
};

std::string_view program_name(Program p);  // "from_pod"
ObjectBytes program_object(Program p);     // the embedded ELF
std::vector<Program> all_programs();

// The socket-LB object (bpf/sock.c): one program per cgroup hook.
struct SockPrograms {
    UniqueFd connect4, sendmsg4, recvmsg4, getpeername4;
};
Result<SockPrograms> load_sock_programs(const std::string& pin_dir);

// Open the embedded object with libbpf (maps pinned by name under pin_dir,
// reused when present and compatible), load it and return the program fd.
// Maps that did not exist are created and pinned.
Result<UniqueFd> load_program(Program p, const std::string& pin_dir);

}  // namespace skiff::datapath
