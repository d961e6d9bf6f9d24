// skiffctl's inspection commands, registered by skiffctl.cc.
#pragma once

#include <vector>

#include "cli.h"

namespace skiff::ctl {

// node list, service list, ct list, nat list, map dump (cmd_maps.cc)
std::vector<Noun> map_nouns();
// net show (cmd_net.cc)
std::vector<Noun> net_nouns();

// trace, monitor (cmd_trace.cc)
std::vector<Noun> trace_nouns();

}  // namespace skiff::ctl
