// The CNI commands. run_plugin() is the whole plugin minus process I/O:
// main.cc feeds it the environment and stdin and prints what it returns.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "datapath/datapath.h"
#include "env.h"
#include "errors.h"
#include "pod_network.h"

namespace skiff::cni {

struct Deps {
    std::function<std::unique_ptr<Datapath>(const std::string& pin_path)> datapath;
    PodNetwork* pod_network = nullptr;
    // Runs another plugin (IPAM delegation); defaults to delegate().
    std::function<CniResult<nlohmann::json>(const std::string& type, const std::string& command, const Env& env,
                                            const std::string& stdin_conf)>
        delegate;
#ifdef SKIFF_TEST_HOOKS
    // Fault injection for tests (CMake option SKIFF_TEST_HOOKS): returns
    // true to fail at this point.
    std::function<bool(const char* point)> fault;
#endif
    // Runs job in a process that outlives the plugin (DEL deletes the host
    // veth there); returns once it started. Unset: job runs inline.
    std::function<Status(const std::function<void()>& job)> background;
    // Why a pin path cannot hold the datapath, or "" (looks, creates
    // nothing). Unset: every path will do.
    std::function<std::string(const std::string& pin_path)> pin_dir_problem;
    // Whether path is the file our stdout writes to (a logFile there would
    // put log lines before the result). Unset: never.
    std::function<bool(const std::string& path)> is_stdout;
};

struct PluginOutput {
    int exit_code = 0;
    std::string stdout_text;  // result or error JSON; empty when nothing to print
};

// Never throws: any failure, an unexpected one too, is an error object.
PluginOutput run_plugin(const Getenv& getenv, const std::string& stdin_text, Deps& deps);

}  // namespace skiff::cni
