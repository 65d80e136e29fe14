using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;
using NUnit.Framework;

namespace GpuActivations.Tests.Packaging;

/// <summary>
/// The NuGet package as a user gets it: <c>dotnet pack -c Release</c> of the repository, then a throwaway console
/// project that installs GpuActivations from that folder, restores, builds and runs one op. Slow (it shells out to the
/// .NET SDK four times, a minute or more on 2 cores), and it needs the SDK: without <c>dotnet</c> it fails, it does
/// not skip. The package gets a version no earlier run used and the throwaway project restores into its own empty
/// packages folder, so no cached copy of an earlier package can stand in for the one just built. Dependencies (ILGPU,
/// System.Numerics.Tensors) come from this machine's global packages folder, used as a local source, else from the
/// NuGet sources this machine is configured with.
/// </summary>
[Category("Slow")]
[NonParallelizable]
public sealed class PackageTests
{
    static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(10);

    string work = "";

    [SetUp]
    public void CreateWorkFolder()
    {
        work = Path.Combine(Path.GetTempPath(), "gpuactivations-package-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
    }

    [TearDown]
    public void DeleteWorkFolder()
    {
        try { Directory.Delete(work, recursive: true); }
        catch (IOException) { } // a build server may still hold a file; the folder is in the temp directory
        catch (UnauthorizedAccessException) { }
    }

    [Test]
    public void ThePackInstallsIntoAThrowawayProjectAndRunsAnOp()
    {
        string dotnet = FindDotnet();
        string root = FindRepositoryRoot();
        string version = "0.0.0-packtest." + Guid.NewGuid().ToString("N")[..12];
        string feed = Path.Combine(work, "feed");

        // 1. The README's command, into the temporary feed, at the unique version.
        Run(dotnet, root, null, "pack", "-c", "Release", "-o", feed, $"-p:Version={version}", "-nologo");
        var packages = Directory.GetFiles(feed).Select(Path.GetFileName).Order().ToArray();
        Assert.That(packages, Is.EqualTo(new[] { $"GpuActivations.{version}.nupkg", $"GpuActivations.{version}.snupkg" }),
            "only the library is packable, with its symbols package beside it");
        CheckPackageContents(Path.Combine(feed, $"GpuActivations.{version}.nupkg"), Path.Combine(feed, $"GpuActivations.{version}.snupkg"));

        // 2. A throwaway consumer outside the repository (so none of its Directory.*.props apply).
        string consumer = Path.Combine(work, "consumer");
        Directory.CreateDirectory(consumer);
        File.WriteAllText(Path.Combine(consumer, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="GpuActivations" Version="[{version}]" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(consumer, "Program.cs"), """
            using System.Reflection;
            using GpuActivations;
            using ILGPU;
            using ILGPU.Runtime;
            using ILGPU.Runtime.CPU;

            // An engine's ILGPU CPU accelerator, the library on its views: ILGPU must arrive as the package's dependency.
            float[] x = [-20f, -3.5f, -1f, -0.25f, 0f, 1e-3f, 0.5f, 2f, 7.25f, 30f];
            using var context = Context.Create(b => b.DefaultCPU().EnableAlgorithms());
            using var device = context.GetCPUDevice(0).CreateAccelerator(context);
            using var ops = GpuActivations.Accelerator.FromIlgpu(device);
            using var buffer = device.Allocate1D(x);
            ops.Apply(Activation.Silu, buffer.View, buffer.View);
            device.Synchronize();
            var version = typeof(Activation).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
            Console.WriteLine($"GpuActivations {version}");
            Console.WriteLine("silu " + string.Join(' ', buffer.GetAsArray1D().Select(v => BitConverter.SingleToInt32Bits(v).ToString("X8"))));
            """);
        File.WriteAllText(Path.Combine(consumer, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <!-- No <clear/>: the machine's own sources stay, for anything the two local folders lack. -->
              <packageSources>
                <add key="gpuactivations-under-test" value="{feed}" />
                <add key="machine-global-packages" value="{GlobalPackagesFolder(dotnet)}" />
              </packageSources>
            </configuration>
            """);

        // 3. Restore into an empty packages folder, build and run.
        var environment = new Dictionary<string, string> { ["NUGET_PACKAGES"] = Path.Combine(work, "packages") };
        Run(dotnet, consumer, environment, "restore", "-nologo");
        Assert.That(Directory.Exists(Path.Combine(work, "packages", "gpuactivations", version)), Is.True,
            "the consumer restored GpuActivations into its private packages folder");
        Run(dotnet, consumer, environment, "build", "--no-restore", "-nologo", "-c", "Release");
        string output = Run(dotnet, consumer, environment, "run", "--no-build", "-c", "Release");

        // 4. The installed library ran and computed what the library in this process computes, bit for bit.
        var lines = output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Some.StartsWith($"GpuActivations {version}"), output);
        float[] x = [-20f, -3.5f, -1f, -0.25f, 0f, 1e-3f, 0.5f, 2f, 7.25f, 30f];
        var expected = new float[x.Length];
        CpuKernels.Apply(Activation.Silu, x, expected);
        string silu = lines.Single(l => l.StartsWith("silu ", StringComparison.Ordinal));
        var got = silu["silu ".Length..].Split(' ').Select(h => BitConverter.Int32BitsToSingle(Convert.ToInt32(h, 16))).ToArray();
        Assert.That(got, Is.EqualTo(expected).AsCollection, output);
    }

    /// <summary>What the package must hold: the library, its XML docs, the README, the licence, its dependencies, and symbols beside it.</summary>
    static void CheckPackageContents(string nupkg, string snupkg)
    {
        using (var package = ZipFile.OpenRead(nupkg))
        {
            var entries = package.Entries.Select(e => e.FullName).ToArray();
            Assert.That(entries, Does.Contain("lib/net10.0/GpuActivations.dll"));
            Assert.That(entries, Does.Contain("lib/net10.0/GpuActivations.xml"), "the XML docs, for IntelliSense");
            Assert.That(entries, Does.Contain("README.md"));
            Assert.That(entries.Where(e => e.EndsWith(".dll", StringComparison.Ordinal)), Has.Exactly(1).Items, "only the library, not the reference or tests");

            using var nuspecStream = package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
            var nuspec = XDocument.Load(nuspecStream);
            XNamespace ns = nuspec.Root!.Name.Namespace;
            var metadata = nuspec.Root.Element(ns + "metadata")!;
            Assert.That(metadata.Element(ns + "id")!.Value, Is.EqualTo("GpuActivations"));
            Assert.That(metadata.Element(ns + "license")!.Value, Is.EqualTo("MIT"));
            Assert.That(metadata.Element(ns + "license")!.Attribute("type")!.Value, Is.EqualTo("expression"));
            Assert.That(metadata.Element(ns + "readme")!.Value, Is.EqualTo("README.md"));
            Assert.That(metadata.Element(ns + "repository")?.Attribute("commit")?.Value, Is.Not.Null.And.Not.Empty, "the commit built, from SourceLink's git query");
            var dependencies = metadata.Descendants(ns + "dependency").Select(d => d.Attribute("id")!.Value).Order().ToArray();
            Assert.That(dependencies, Is.EqualTo(new[] { "ILGPU", "ILGPU.Algorithms", "System.Numerics.Tensors" }),
                "build-time analyzers (PublicApiAnalyzers) are not dependencies");
        }

        using var symbols = ZipFile.OpenRead(snupkg);
        Assert.That(symbols.Entries.Select(e => e.FullName), Does.Contain("lib/net10.0/GpuActivations.pdb"));
    }

    /// <summary>The SDK's dotnet: the one running the build (DOTNET_HOST_PATH), else the first on PATH.</summary>
    static string FindDotnet()
    {
        string name = OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host)) return host;
        foreach (string folder in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(folder, name);
            if (File.Exists(candidate)) return candidate;
        }

        Assert.Fail("dotnet was not found (neither DOTNET_HOST_PATH nor PATH names it): this test packs the library and builds a "
            + "project against the package, so it needs the .NET 10 SDK. Install the SDK or put its dotnet on PATH.");
        return "";
    }

    static string FindRepositoryRoot()
    {
        for (string? folder = TestContext.CurrentContext.TestDirectory; folder is not null; folder = Path.GetDirectoryName(folder))
            if (File.Exists(Path.Combine(folder, "GpuActivations.sln"))) return folder;
        Assert.Fail($"GpuActivations.sln is not above {TestContext.CurrentContext.TestDirectory}: the package test packs the repository, so run the tests from a clone.");
        return "";
    }

    /// <summary>The machine's global packages folder (where the repository's own restore put ILGPU), as `dotnet nuget locals` says.</summary>
    static string GlobalPackagesFolder(string dotnet)
    {
        string output = Run(dotnet, Path.GetTempPath(), null, "nuget", "locals", "global-packages", "--list");
        // "global-packages: /root/.nuget/packages/"
        string line = output.Split('\n').Single(l => l.StartsWith("global-packages:", StringComparison.Ordinal));
        return line["global-packages:".Length..].Trim();
    }

    /// <summary>Runs dotnet with <paramref name="arguments"/>, failing the test with its output when it exits non-zero or hangs.</summary>
    static string Run(string dotnet, string folder, IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        var info = new ProcessStartInfo(dotnet)
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments) info.ArgumentList.Add(argument);
        // The test host may run under `dotnet test`, whose MSBuild variables would steer the child's build.
        foreach (string variable in new[] { "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildLoadMicrosoftTargetsReadOnly" })
            info.Environment.Remove(variable);
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["MSBUILDDISABLENODEREUSE"] = "1"; // no build server left holding files in the temp folder
        info.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{dotnet} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(StepTimeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"`dotnet {string.Join(' ', arguments)}` in {folder} did not finish in {StepTimeout.TotalMinutes} minutes:\n{stdout.Result}\n{stderr.Result}");
        }

        string output = stdout.Result + stderr.Result;
        Assert.That(process.ExitCode, Is.Zero, $"`dotnet {string.Join(' ', arguments)}` in {folder} failed:\n{output}");
        return output;
    }
}
