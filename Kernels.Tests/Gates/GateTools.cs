using System.Diagnostics;
using NUnit.Framework;

namespace GpuActivations.Tests.Gates;

/// <summary>An external program a gate runs (ptxas, clang), found once, or why it is absent and how to install it.</summary>
/// <param name="Name">The program's name, e.g. <c>ptxas</c>.</param>
/// <param name="Path">Its path, or null when absent.</param>
/// <param name="Version">The first line of its version output, or the reason it is absent.</param>
/// <param name="Install">How to install it (printed with an absent tool).</param>
public sealed record GateTool(string Name, string? Path, string Version, string Install)
{
    /// <summary>True when the program was found and ran.</summary>
    public bool IsPresent => Path is not null;
}

/// <summary>
/// Finding and running the compile gates' tools. An absent tool makes the gate tests Ignored with the reason and how to
/// install it; with <c>GPUACTIVATIONS_REQUIRE_GATES=1</c> (CI) it fails them instead.
/// </summary>
public static class GateTools
{
    /// <summary>The environment variable that turns a missing gate tool into a failure.</summary>
    public const string RequireVariable = "GPUACTIVATIONS_REQUIRE_GATES";

    /// <summary>The environment variable naming ptxas explicitly.</summary>
    public const string PtxasVariable = "GPUACTIVATIONS_PTXAS";

    /// <summary>The environment variable naming the OpenCL C checker explicitly (default: <c>clang-15</c> on PATH).</summary>
    public const string ClangVariable = "GPUACTIVATIONS_CLANG";

    /// <summary>Where this project's development machines keep CUDA 11.8's ptxas (tried after PATH).</summary>
    public const string FallbackPtxas = "/opt/cuda-tk/root/usr/bin/ptxas";

    /// <summary>True when <see cref="RequireVariable"/> is 1: a missing tool fails the gate.</summary>
    public static bool Required => Environment.GetEnvironmentVariable(RequireVariable) == "1";

    const string PtxasInstall =
        "install CUDA's ptxas (Debian: add 'contrib non-free' to the Components of /etc/apt/sources.list.d/debian.sources, " +
        "'apt-get download nvidia-cuda-toolkit', 'dpkg -x nvidia-cuda-toolkit_*.deb DIR', then " +
        "export GPUACTIVATIONS_PTXAS=DIR/usr/bin/ptxas; .ci/run does this), or put ptxas on PATH";

    const string ClangInstall = "install clang 15 ('apt-get install clang-15'), or set GPUACTIVATIONS_CLANG to a clang that accepts -cl-std=CL2.0";

    static readonly Lazy<GateTool> ptxas = new(() => Find("ptxas", Environment.GetEnvironmentVariable(PtxasVariable),
        ["ptxas", FallbackPtxas], "--version", PtxasInstall, lastLine: true));

    static readonly Lazy<GateTool> clang = new(() => Find("clang-15", Environment.GetEnvironmentVariable(ClangVariable),
        ["clang-15"], "--version", ClangInstall, lastLine: false));

    /// <summary>ptxas: <see cref="PtxasVariable"/>, else PATH, else <see cref="FallbackPtxas"/>.</summary>
    public static GateTool Ptxas => ptxas.Value;

    /// <summary>clang-15: <see cref="ClangVariable"/>, else PATH.</summary>
    public static GateTool Clang => clang.Value;

    /// <summary>The tool's path; an absent tool ignores the test (fails it when <see cref="Required"/>), with the reason and how to install it.</summary>
    public static string Require(GateTool tool)
    {
        if (tool.Path is not null) return tool.Path;
        string message = $"{tool.Name} is not available ({tool.Version}); to run this compile gate, {tool.Install}.";
        if (Required) Assert.Fail($"{message} {RequireVariable}=1 makes a missing gate tool a failure.");
        Assert.Ignore(message);
        throw new UnreachableException();
    }

    static GateTool Find(string name, string? explicitPath, string[] candidates, string versionArgument, string install, bool lastLine)
    {
        IEnumerable<string> tries = explicitPath is { Length: > 0 } ? [explicitPath] : candidates; // an explicit choice is tried alone
        var reasons = new List<string>();
        foreach (string candidate in tries)
        {
            string? path = Resolve(candidate);
            if (path is null) { reasons.Add($"{candidate} not found"); continue; }
            try
            {
                ToolResult result = Run(path, [versionArgument], TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
                string[] lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (result.ExitCode == 0 && lines.Length > 0)
                    return new GateTool(name, path, lastLine ? lines[^1] : lines[0], install);
                reasons.Add($"{path} {versionArgument} exited with {result.ExitCode}");
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException or TimeoutException)
            {
                reasons.Add($"{path} could not run: {e.Message}");
            }
        }
        string origin = explicitPath is { Length: > 0 } ? $" ({(name == "ptxas" ? PtxasVariable : ClangVariable)}={explicitPath})" : "";
        return new GateTool(name, null, string.Join("; ", reasons) + origin, install);
    }

    /// <summary>A file path as given, or a bare name looked up on PATH; null when neither exists.</summary>
    static string? Resolve(string candidate)
    {
        if (candidate.Contains('/')) return File.Exists(candidate) ? candidate : null;
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string full = System.IO.Path.Combine(dir, candidate);
            if (File.Exists(full)) return full;
        }
        return null;
    }

    /// <summary>At most one tool process per core: the gates' ptxas and clang runs share this.</summary>
    static readonly SemaphoreSlim Slots = new(Math.Max(1, Environment.ProcessorCount));

    /// <summary>Runs <paramref name="path"/> with <paramref name="arguments"/>, one process per core at most; stdout and stderr together.</summary>
    public static async Task<ToolResult> Run(string path, IReadOnlyList<string> arguments, TimeSpan timeout)
    {
        await Slots.WaitAsync().ConfigureAwait(false);
        try
        {
            var info = new ProcessStartInfo(path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (string argument in arguments) info.ArgumentList.Add(argument);
            using var process = Process.Start(info) ?? throw new IOException($"{path} did not start");
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            using var cancel = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(cancel.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{System.IO.Path.GetFileName(path)} {string.Join(' ', arguments)} ran over {timeout.TotalSeconds} s");
            }
            return new ToolResult(process.ExitCode, await stdout.ConfigureAwait(false) + await stderr.ConfigureAwait(false));
        }
        finally
        {
            Slots.Release();
        }
    }
}

/// <summary>A tool's exit code and its output (stdout, then stderr).</summary>
/// <param name="ExitCode">The exit code.</param>
/// <param name="Output">What it printed.</param>
public sealed record ToolResult(int ExitCode, string Output);
