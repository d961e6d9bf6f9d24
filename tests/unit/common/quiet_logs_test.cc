// The code under test logs its (expected) failures; keep test output to
// test results. A test that wants logs can raise the level again.
#include <gtest/gtest.h>

#include "common/log.h"

namespace {

class QuietLogs : public ::testing::Environment {
public:
    void SetUp() override { skiff::log::set_level(skiff::log::Level::Silent); }
};

const auto* const kQuiet = ::testing::AddGlobalTestEnvironment(new QuietLogs);

}  // namespace
