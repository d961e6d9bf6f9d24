// Running another CNI plugin (the configured IPAM plugin) exactly as libcni
// would: same environment with CNI_COMMAND set, the full config on stdin.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "env.h"
#include "errors.h"

namespace skiff::cni {

// Set in a delegated plugin's environment (to the delegating skiff's pid).
// A skiff started with it set was reached by a delegation chain that a skiff
// began: skiff is no IPAM plugin, so that is a loop, however many other
// plugins it went through, and it refuses (code 7) instead of recursing.
inline constexpr const char* kDelegationMarker = "SKIFF_DELEGATED_BY";

// Finds `type` in CNI_PATH and runs it. On success returns the decoded
// stdout (null for commands without output); a plugin error is passed
// through with its own code and message.
CniResult<nlohmann::json> delegate(const std::string& type, const std::string& command, const Env& env,
                                   const std::string& stdin_conf);

}  // namespace skiff::cni
