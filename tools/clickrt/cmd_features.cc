// Placeholder until the subcommand lands.
#include "commands.h"

namespace clickrt::cli {
void RegisterFeatures(CLI::App& app, int* exit_code) {}
}  // namespace clickrt::cli
