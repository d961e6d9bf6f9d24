// The CNI_* environment: read, validated per command, CNI_ARGS parsed.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "errors.h"

namespace skiff::cni {

enum class Command { Add, Del, Check, Gc, Status, Version };

struct Env {
    Command command = Command::Version;
    std::string command_name;
    std::string container_id;
    std::string netns;
    std::string ifname;
    std::string path;  // CNI_PATH, ':'-separated
    std::string args_raw;
    std::map<std::string, std::string> args;  // CNI_ARGS keys we know

    std::string arg(const std::string& k) const {
        auto it = args.find(k);
        return it == args.end() ? "" : it->second;
    }
};

using Getenv = std::function<const char*(const char*)>;

// Code 4 for missing/invalid variables, 2 for unknown CNI_ARGS keys without
// IgnoreUnknown.
CniResult<Env> parse_env(const Getenv& getenv);

}  // namespace skiff::cni
