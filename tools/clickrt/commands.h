// The `clickrt` subcommands. Each Register* adds a subcommand to the app; its callback returns the
// process exit code through *exit_code.
#pragma once

#include <CLI/CLI.hpp>
#include <vector>

#include "clickrt/status.h"

namespace clickrt::cli {

void RegisterRun(CLI::App& app, int* exit_code);
void RegisterInfo(CLI::App& app, int* exit_code);
void RegisterDevices(CLI::App& app, int* exit_code);
void RegisterBuild(CLI::App& app, int* exit_code);
void RegisterInspect(CLI::App& app, int* exit_code);
void RegisterBench(CLI::App& app, int* exit_code);
void RegisterFeatures(CLI::App& app, int* exit_code);  // cmd_features.cc
void RegisterServe(CLI::App& app, int* exit_code);     // cmd_serve.cc
void RegisterLoadtest(CLI::App& app, int* exit_code);  // cmd_loadtest.cc
void RegisterCalibrate(CLI::App& app, int* exit_code); // cmd_calibrate.cc
void RegisterEval(CLI::App& app, int* exit_code);      // cmd_eval.cc

// The q-quantile (0..1) of `v` (nearest rank); 0 for an empty vector.
double Percentile(std::vector<double> v, double q);

// Prints "error: <message>" to stderr and returns the exit code for a failed Status.
int Fail(const Status& status);

}  // namespace clickrt::cli
