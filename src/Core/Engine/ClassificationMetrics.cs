namespace MLNet.Attention.Engine;

/// <summary>
/// Validation metrics of a classifier from class scores and integer labels, for early stopping and epoch reports:
/// accuracy, macro-F1 and ROC AUC (binary, or one-vs-rest macro average for more classes, as scikit-learn's
/// <c>roc_auc_score(average="macro", multi_class="ovr")</c>).
/// </summary>
internal static class ClassificationMetrics
{
    /// <summary>Computes every metric.</summary>
    /// <param name="scores">Row-major [rows, classes] scores (probabilities or logits: only their order matters).
    /// With one column, a binary score for class 1 (threshold 0.5 on probabilities is not assumed: predicted class 1
    /// when the score is positive for logits is ambiguous, so a single column is read as the probability of class 1).</param>
    /// <param name="labels">Class index per row.</param>
    /// <param name="classes">Number of classes (columns of <paramref name="scores"/>, or 2 for a single column).</param>
    public static Dictionary<string, double> Compute(ReadOnlySpan<float> scores, ReadOnlySpan<int> labels, int classes)
    {
        int rows = labels.Length;
        if (rows == 0) throw new ArgumentException("No validation rows to compute metrics on.", nameof(labels));
        int columns = scores.Length / rows;
        if (columns * rows != scores.Length || columns != classes && !(columns == 1 && classes == 2))
            throw new ArgumentException($"Scores have {scores.Length} values for {rows} rows; expected {rows} × {classes}.", nameof(scores));
        var predicted = new int[rows];
        for (int r = 0; r < rows; r++)
        {
            if (columns == 1) { predicted[r] = scores[r] >= 0.5f ? 1 : 0; continue; }
            int best = 0;
            for (int c = 1; c < columns; c++)
                if (scores[r * columns + c] > scores[r * columns + best]) best = c;
            predicted[r] = best;
        }
        int correct = 0;
        var truePositive = new int[classes];
        var predictedCount = new int[classes];
        var actualCount = new int[classes];
        for (int r = 0; r < rows; r++)
        {
            int y = labels[r];
            if ((uint)y >= (uint)classes) throw new ArgumentException($"Label {y} at validation row {r} is outside [0, {classes}).", nameof(labels));
            actualCount[y]++;
            predictedCount[predicted[r]]++;
            if (predicted[r] == y) { correct++; truePositive[y]++; }
        }
        double f1Sum = 0;
        for (int c = 0; c < classes; c++)
        {
            int denominator = predictedCount[c] + actualCount[c];
            f1Sum += denominator == 0 ? 0 : 2.0 * truePositive[c] / denominator;
        }
        var result = new Dictionary<string, double>
        {
            [nameof(EarlyStoppingMetric.Accuracy)] = (double)correct / rows,
            [nameof(EarlyStoppingMetric.MacroF1)] = f1Sum / classes,
        };
        double aucSum = 0;
        int aucClasses = 0;
        var classScores = new float[rows];
        var positive = new bool[rows];
        for (int c = classes == 2 ? 1 : 0; c < classes; c++)
        {
            for (int r = 0; r < rows; r++)
            {
                classScores[r] = columns == 1 ? scores[r] : scores[r * columns + c];
                positive[r] = labels[r] == c;
            }
            if (BinaryAuc(classScores, positive) is { } auc) { aucSum += auc; aucClasses++; }
        }
        if (aucClasses > 0) result[nameof(EarlyStoppingMetric.Auc)] = aucSum / aucClasses;
        return result;
    }

    /// <summary>ROC AUC by the rank-sum (Mann–Whitney) formula with average ranks for ties; null when one class is absent.</summary>
    internal static double? BinaryAuc(ReadOnlySpan<float> scores, ReadOnlySpan<bool> positive)
    {
        int n = scores.Length;
        var order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        var keys = scores.ToArray();
        Array.Sort(keys, order);
        double rankSumPositive = 0;
        long positives = 0;
        for (int i = 0; i < n;)
        {
            int j = i;
            while (j + 1 < n && keys[j + 1] == keys[i]) j++;
            double averageRank = (i + j) / 2.0 + 1;
            for (int k = i; k <= j; k++)
                if (positive[order[k]]) { rankSumPositive += averageRank; positives++; }
            i = j + 1;
        }
        long negatives = n - positives;
        if (positives == 0 || negatives == 0) return null;
        return (rankSumPositive - positives * (positives + 1) / 2.0) / ((double)positives * negatives);
    }
}
