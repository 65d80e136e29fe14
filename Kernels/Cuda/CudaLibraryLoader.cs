using System.Runtime.InteropServices;

namespace GpuActivations.Cuda;

/// <summary>The outcome of loading a native API: the bound API, or a human reason why there is none.</summary>
internal readonly record struct NativeLoad<T>(T? Api, string? FailureReason) where T : class
{
    /// <summary>Whether the API was bound.</summary>
    public bool IsLoaded => Api is not null;

    /// <summary>The API, or an exception carrying <see cref="FailureReason"/>.</summary>
    public T Require(string what) =>
        Api ?? throw new NotSupportedException($"{what} is not available: {FailureReason}");
}

/// <summary>
/// Finds a native library by trying candidate names in order with <see cref="NativeLibrary.TryLoad(string, out nint)"/>,
/// and resolves its exports. Never throws for a missing library or export: callers turn failures into reasons.
/// </summary>
internal static class CudaLibraryLoader
{
    /// <summary>
    /// The candidates to try: the environment override alone when it is set (an explicit choice must not
    /// silently fall back to another library), else the versioned default names.
    /// </summary>
    public static IReadOnlyList<string> Candidates(string? overridePath, IReadOnlyList<string> defaults) =>
        string.IsNullOrWhiteSpace(overridePath) ? defaults : [overridePath];

    /// <summary>Reads an environment override; blank means unset.</summary>
    public static string? ReadOverride(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value && !string.IsNullOrWhiteSpace(value) ? value : null;

    /// <summary>Loads the first candidate that loads; reports which one, or a reason naming them all.</summary>
    public static bool TryLoadFirst(IReadOnlyList<string> candidates, out nint handle, out string loadedName, out string reason)
    {
        foreach (string name in candidates)
        {
            if (NativeLibrary.TryLoad(name, out handle))
            {
                loadedName = name;
                reason = "";
                return true;
            }
        }

        handle = 0;
        loadedName = "";
        reason = candidates.Count switch
        {
            0 => "no library names to try",
            1 => $"{candidates[0]} not found",
            _ => $"{candidates[0]} not found (nor {string.Join(", ", candidates.Skip(1))})",
        };
        return false;
    }

    /// <summary>Resolves the first of <paramref name="names"/> that the library exports, or 0.</summary>
    public static nint Export(nint library, List<string> missing, params string[] names)
    {
        foreach (string name in names)
        {
            if (NativeLibrary.TryGetExport(library, name, out nint address))
                return address;
        }

        missing.Add(names[0]);
        return 0;
    }

    /// <summary>Resolves an optional export (0 when absent).</summary>
    public static nint OptionalExport(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out nint address) ? address : 0;

    /// <summary>Reads a NUL-terminated UTF-8 string; null for a null pointer.</summary>
    public static unsafe string? Utf8(byte* text) => text is null ? null : Marshal.PtrToStringUTF8((nint)text);
}

/// <summary>
/// A process-wide native load, done once on first use (a failure and its reason are remembered too) until
/// <see cref="Reset"/>: the driver and NVRTC share this, each with its own loader.
/// </summary>
internal sealed class SharedLoad<T>(Func<NativeLoad<T>> load) where T : class
{
    readonly Lock gate = new();
    NativeLoad<T>? value;

    /// <summary>The load, performed on first use.</summary>
    public NativeLoad<T> Value
    {
        get
        {
            lock (gate) return value ??= load();
        }
    }

    /// <summary>Forgets the load so the next use loads again (tests; a library installed later).</summary>
    public void Reset()
    {
        lock (gate) value = null;
    }
}
