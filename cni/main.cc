// skiff: the CNI plugin executable. Environment and stdin in, result or
// error JSON on stdout; logs go to stderr or the configured logFile.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>

#include "bpf/datapath.h"
#include "common/log.h"
#include "plugin.h"

namespace {

// SKIFF_FAULT_INJECT=<point> fails the ADD at that point, =kill:<point>
// kills the process there (tests of rollback and crash safety).
bool fault(const char* point) {
    const char* spec = std::getenv("SKIFF_FAULT_INJECT");
    if (!spec) return false;
    std::string s(spec);
    if (s.rfind("kill:", 0) == 0) {
        if (s.substr(5) == point) ::raise(SIGKILL);
        return false;
    }
    return s == point;
}

}  // namespace

int main() {
    skiff::log::set_prefix("skiff");
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    auto pod_network = skiff::cni::make_netlink_pod_network();
    skiff::cni::Deps deps;
    deps.datapath = [](const std::string& pin) { return skiff::make_bpf_datapath(pin); };
    deps.pod_network = pod_network.get();
    deps.fault = fault;
    auto out = skiff::cni::run_plugin([](const char* k) { return std::getenv(k); }, input, deps);
    if (!out.stdout_text.empty()) std::cout << out.stdout_text << std::flush;
    return out.exit_code;
}
