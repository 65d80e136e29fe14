using GpuActivations.Reference;

namespace GpuActivations.Bench;

/// <summary>The ops the main job verifies and measures, each with its reference.</summary>
public static class Catalog
{
    /// <summary>Every activation with its default parameters and its reference id.</summary>
    public static IReadOnlyList<(Activation Activation, ActivationId Reference)> Activations { get; } =
        [.. Activation.All.Select(a => (a, Enum.Parse<ActivationId>(a.Kind.ToString())))];
}
