using System.Diagnostics;

namespace GpuActivations.Tests.Hardening;

/// <summary>The process's memory as the OS sees it, after a full collection (finalizers run, twice over).</summary>
public readonly record struct ProcessMemory(long WorkingSet, long Private)
{
    const double MiB = 1 << 20;

    /// <summary>Collects (running finalizers, which free forgotten native handles) and reads working set and private bytes.</summary>
    public static ProcessMemory Measure()
    {
        for (int i = 0; i < 2; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        GC.Collect();
        using var p = Process.GetCurrentProcess();
        p.Refresh();
        return new(p.WorkingSet64, p.PrivateMemorySize64);
    }

    /// <summary>The process's memory now, without collecting first.</summary>
    public static ProcessMemory Peek()
    {
        using var p = Process.GetCurrentProcess();
        p.Refresh();
        return new(p.WorkingSet64, p.PrivateMemorySize64);
    }

    /// <summary>Growth from <paramref name="before"/> to this measurement.</summary>
    public ProcessMemory Minus(ProcessMemory before) => new(WorkingSet - before.WorkingSet, Private - before.Private);

    public override string ToString() => $"working set {WorkingSet / MiB:F1} MiB, private {Private / MiB:F1} MiB";
}
